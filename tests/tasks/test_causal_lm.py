"""Perplexity streams over sequence chunks: the same NLL and hits as the whole-tensor computation."""
import pytest
import torch
import torch.nn.functional as F

from workbench.tasks.causal_lm import block_nll


def _reference(logits, ids):
    """The whole-tensor computation block_nll replaced (an fp32 copy of all [B, T, V] logits)."""
    logits = logits[:, :-1].float()
    target = ids[:, 1:]
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none").view(target.shape)
    return nll.sum(1), (logits.argmax(-1) == target).float().sum(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_elements", [1, 7 * 50, 1 << 24])
def test_streamed_block_nll_matches_whole_tensor(dtype, chunk_elements):
    torch.manual_seed(0)
    logits, ids = (torch.randn(3, 17, 50) * 4).to(dtype), torch.randint(0, 50, (3, 17))
    ids[:, 5] = logits[:, 4].float().argmax(-1)   # some hits, so the hit count is checked for real
    nll, hits = block_nll(logits, ids, chunk_elements=chunk_elements)
    ref_nll, ref_hits = _reference(logits, ids)
    assert nll.dtype == torch.float32
    torch.testing.assert_close(nll, ref_nll, atol=1e-5, rtol=1e-6)
    assert torch.equal(hits, ref_hits) and hits.min() >= 1


def test_streaming_never_upcasts_more_than_a_chunk(monkeypatch):
    sizes = []
    real = torch.Tensor.float

    def spy(t):
        sizes.append(t.numel())
        return real(t)

    monkeypatch.setattr(torch.Tensor, "float", spy)
    logits = torch.randn(2, 65, 100, dtype=torch.bfloat16)
    block_nll(logits, torch.randint(0, 100, (2, 65)), chunk_elements=2 * 100 * 8)
    assert max(sizes) == 2 * 8 * 100 and sizes.count(2 * 8 * 100) == 8   # 64 scored positions, slices of 8


def test_evaluation_batches_shrink_for_big_vocabularies(tmp_path, monkeypatch):
    from tiny_task_models import TEXTS, llama

    import workbench.tasks.causal_lm as lm

    task = lm.CausalLMTask(llama(tmp_path / "m", head="lm"), {"test": TEXTS * 3}, block_len=16)
    base = task.baseline()
    seen = []
    real = base.runner.__call__
    monkeypatch.setattr(type(base.runner), "__call__", lambda self, x: seen.append(len(x["input_ids"])) or real(x))
    full = task.evaluate(base, batch_size=16)
    monkeypatch.setattr(lm, "LOGITS_BUDGET", 2 * 16 * len(task.tokenizer))   # room for two blocks a batch
    seen.clear()
    capped = task.evaluate(base, batch_size=16)
    assert max(seen) == 2 and capped.value == pytest.approx(full.value, rel=1e-5)
