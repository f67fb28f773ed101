"""The fast decode loop: greedy output identical to HF generate (GPT-2 and Llama shapes), one compiled graph for
every step, emission times per step, bad input and the unsupported-model fallback."""
import pytest
import torch
from tiny_lms import HF_INIT, tiny_gpt2, tiny_llama
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.decoding.fast_loop import FastDecoder, hf_generate


def llama(seed=0):   # HF's default init, a 256-token vocabulary
    return tiny_llama(seed=seed, vocab=256, init=HF_INIT)


def gpt2(seed=0):
    return tiny_gpt2(seed=seed, vocab=256, heads=4, init=HF_INIT)


def prompts(batch, length, seed=1):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", [llama, gpt2])
def test_eager_static_loop_matches_hf_generate(make):
    model = make()
    ids = prompts(3, 9)
    ref = hf_generate(model, ids, 12)
    dec = FastDecoder(model, max_batch_size=4, max_cache_len=32, compile=False)
    assert dec.supported and not dec.compiled and dec.reason == ""
    for _ in range(2):   # the cache is reset between calls: the second call is as right as the first
        res = dec.generate(ids, 12)
        assert torch.equal(res.tokens, ref.tokens)
    assert res.tokens.shape == (3, 21) and res.emit_counts == [1] * 12 and len(res.emit_times) == 12
    assert res.start < res.emit_times[0] and res.emit_times == sorted(res.emit_times)
    assert len(ref.emit_times) == 12 and ref.emit_counts == [1] * 12
    one = dec.generate(ids[:1], 12)   # a smaller batch gets its own cache, same tokens
    assert torch.equal(one.tokens, ref.tokens[:1])


def test_compiled_loop_matches_and_does_not_recompile():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = llama(seed=2)
    ids = prompts(2, 7, seed=3)
    ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                         pad_token_id=0)
    dec = FastDecoder(model, max_batch_size=2, max_cache_len=40)
    res = dec.generate(ids, 10)
    assert dec.compiled, dec.reason
    assert dec.frozen and "frozen weights" in dec.label and res.notes == dec.label   # CPU: weights frozen in
    assert torch.equal(res.tokens, ref)
    assert dec.compile_seconds > 0
    graphs = counters["stats"]["unique_graphs"]
    second = prompts(2, 13, seed=4)
    res2 = dec.generate(second, 20)   # a new prompt length and positions: no new graph, the same tokens as HF
    assert counters["stats"]["unique_graphs"] == graphs == 1
    assert res2.tokens.shape == (2, 33) and torch.equal(res2.tokens, hf_generate(model, second, 20).tokens)
    # quality through the same batch-2 graph: teacher forced, the logits of a full forward (no new graph)
    with torch.inference_mode():
        full = model(input_ids=second).logits[:, :-1]
    assert torch.allclose(dec.score(second), full, atol=1e-3)
    assert counters["stats"]["unique_graphs"] == 1


def test_frozen_step_keeps_the_weights_it_compiled_with():
    """Frozen means the weights are constants of the compiled graph: zeroing the LM head afterwards changes what the
    eager parts read (the prefill's first token becomes 0, as every token of an eager loop does) but not the steps.
    With freezing passed only as a compile option, the weights stayed graph inputs and every step read the zeros."""
    model = llama(seed=5)
    ids = prompts(1, 6, seed=6)
    frozen = FastDecoder(model, max_batch_size=1, max_cache_len=24)
    live = FastDecoder(model, max_batch_size=1, max_cache_len=24, compile=False)
    frozen.generate(ids, 8)   # compiles, with the weights as they are now
    assert frozen.compiled and frozen.frozen, frozen.reason
    with torch.no_grad():
        model.lm_head.weight.zero_()
    assert (live.generate(ids, 8).tokens[:, 6:] == 0).all()   # every logit 0: argmax is token 0
    after = frozen.generate(ids, 8).tokens[:, 6:]
    assert after[0, 0] == 0 and (after[0, 1:] != 0).any()


def test_weights_stored_narrower_than_computed_are_not_frozen():
    """Freezing would fold bf16_weights' bf16 -> fp32 cast into an fp32 constant: the step would read fp32 bytes."""
    from workbench.decoding.fast_loop import freezable
    from workbench.steps.bf16_weights import bf16_weights

    assert freezable(llama()) and freezable(llama().to(torch.bfloat16))
    narrow = bf16_weights(llama())
    assert not freezable(narrow)
    assert not FastDecoder(narrow, max_batch_size=1, max_cache_len=8).freeze


def test_two_decoders_in_one_process_each_run_their_own_graph():
    """Steps run guard-free: two decoders of the same class and batch size must never share a compiled graph
    (each batch size compiles a private copy of the step), else the second would run the first's frozen weights.
    The second is compiled with the C++ wrapper: its graph's calls are C++ code, the tokens the same as HF's."""
    from torch._inductor.utils import run_and_get_code

    first, second = llama(seed=7), llama(seed=8)
    ids = prompts(1, 6, seed=9)
    decoders = [FastDecoder(first, max_batch_size=2, max_cache_len=24),
                FastDecoder(second, max_batch_size=2, max_cache_len=24, cpp_wrapper=True)]
    codes = {}
    for model, dec in zip((first, second), decoders):
        res, codes[dec.cpp_wrapper] = run_and_get_code(lambda: dec.generate(ids, 8))
        assert torch.equal(res.tokens, hf_generate(model, ids, 8).tokens), dec.reason
    assert "C++ wrapper" in decoders[1].label and "C++ wrapper" not in decoders[0].label
    assert ["inductor_entry_impl" in code for code in codes[True] + codes[False]] == [True, False]
    assert not torch.equal(decoders[0].generate(ids, 8).tokens, decoders[1].generate(ids, 8).tokens)
    two = prompts(2, 6, seed=10)   # a second batch size of the first decoder: its own graph, still right
    assert torch.equal(decoders[0].generate(two, 8).tokens, hf_generate(first, two, 8).tokens)
    assert all(dec.compiled for dec in decoders), [dec.reason for dec in decoders]   # not the eager fallback


class NoCompileLM(GPT2LMHeadModel):
    _can_compile_fullgraph = False


def test_unsupported_model_falls_back_to_hf_generate_and_says_so():
    torch.manual_seed(0)
    model = NoCompileLM(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=64)).eval()
    dec = FastDecoder(model, max_batch_size=1, max_cache_len=32)
    assert not dec.supported and "_can_compile_fullgraph" in dec.reason and "unsupported" in dec.label
    ids = torch.randint(0, 64, (1, 5))
    res = dec.generate(ids, 6)
    assert "HF generate" in res.notes and res.tokens.shape == (1, 11)
    assert torch.equal(res.tokens, model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0))


def test_bad_input_names_the_fix():
    dec = FastDecoder(gpt2(), max_batch_size=2, max_cache_len=16, compile=False)
    with pytest.raises(ValueError, match="max_batch_size"):
        dec.generate(prompts(3, 4), 4)
    with pytest.raises(ValueError, match="max_cache_len"):
        dec.generate(prompts(1, 10), 10)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        dec.generate(torch.tensor([1, 2, 3]), 2)
    with pytest.raises(ValueError, match="context"):
        FastDecoder(gpt2(), max_batch_size=1, max_cache_len=1000)
    with pytest.raises(ValueError, match="move the model"):
        FastDecoder(gpt2(), max_batch_size=1, max_cache_len=16, device="meta")


@pytest.mark.gpu
def test_cuda_graph_loop_matches_hf_generate_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = llama(seed=5).to("cuda")
    ids = prompts(2, 9, seed=6).to("cuda")
    ref = hf_generate(model, ids, 12)
    dec = FastDecoder(model, max_batch_size=2, max_cache_len=32, device="cuda")
    res = dec.generate(ids, 12)
    assert dec.compiled, dec.reason
    assert torch.equal(res.tokens, ref.tokens) and res.tokens.device.type == "cuda"
    assert res.emit_times == sorted(res.emit_times) and res.emit_times[0] > res.start


@pytest.mark.slow  # integration-like: the demo LM through int4 weight-only and an inductor compile
def test_headline_int4_path_compiled_gives_hf_greedy_tokens_on_the_demo_lm():
    """``fast-loop-int4-wo`` (workbench.arms.llm builds exactly this decoder: int4 weights, compiled, guard-free;
    not frozen: its int4 weights are bf16-typed tensors in an fp32 model, see ``freezable``) makes HF generate's greedy
    tokens on the demo LM's int4 weights; a second call with a NEW prompt
    length (new positions, same graph) is checked on its tokens, not only its shape; scoring runs the same graph."""
    import copy

    from workbench.steps.weight_only import WeightOnlyUnavailable, apply_weight_only
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    try:
        model = apply_weight_only(copy.deepcopy(task.baseline().model), 4, 128)
    except WeightOnlyUnavailable as exc:
        pytest.skip(str(exc))
    first, second = (p.reshape(1, -1) for p in task.prompts(2, 24))
    second = second[:, :11]
    dec = FastDecoder(model, max_batch_size=1, max_cache_len=64)
    res = dec.generate(first, 16)
    assert dec.compiled and not dec.frozen, dec.reason
    assert torch.equal(res.tokens, hf_generate(model, first, 16).tokens)
    res2 = dec.generate(second, 20)
    assert res2.tokens.shape == (1, 31) and torch.equal(res2.tokens, hf_generate(model, second, 20).tokens)
    logits = dec.score(res2.tokens)    # teacher forced through the compiled step: its greedy picks are the tokens
    assert torch.equal(logits[0, -20:].argmax(-1), res2.tokens[0, -20:])


def test_bf16_batch_one_step_compiles_to_gemv_reductions_with_the_full_forwards_logits():
    from torch._dynamo.utils import counters

    from workbench.decoding.fast_loop import gemv_kernels

    torch._dynamo.reset()
    counters.clear()
    model = llama(seed=4).to(torch.bfloat16)
    cpu = torch.device("cpu")
    # bf16 / fp16 at batch 1 on CPU only: fp32 keeps aten's kernel, other batch sizes their prepacked one
    assert gemv_kernels(model, cpu, 1) and not gemv_kernels(model, cpu, 2)
    assert not gemv_kernels(llama(seed=4), cpu, 1)
    ids = prompts(1, 10, seed=5)
    dec = FastDecoder(model, max_batch_size=1, max_cache_len=24)
    res = dec.generate(ids, 6)
    assert dec.compiled and dec.gemv and "GEMV" in dec.label and res.tokens.shape == (1, 16)
    assert not dec.frozen   # a GEMV step reads its stored weights in place
    assert counters["inductor"]["decompose_mm"] > 0      # the step's matmuls became reductions
    with torch.inference_mode():
        full = model(input_ids=ids).logits[:, :-1].float()
    scored = dec.score(ids)                               # through the very GEMV graph that was timed
    assert (scored - full).abs().max() < 0.05 and (scored.argmax(-1) == full.argmax(-1)).float().mean() > 0.85


def test_gemm_template_takes_the_batch_one_step_frozen_with_the_eager_loops_tokens():
    """``gemm_template``: the frozen step's matmuls autotuned against inductor's C++ GEMM template (its micro-GEMM in
    the generated code); at bf16 batch 1 it takes the place of the GEMV. On a CPU without bf16 hardware the fp32 step
    is checked instead: the template's emulated bf16 rounds differently from aten's, and the bf16 arms skip there."""
    from torch._inductor.utils import run_and_get_code

    from workbench.runtime.cpu import isa_summary, native_bf16
    from workbench.steps.bf16_weights import bf16_weights

    model = llama(seed=11).to(torch.bfloat16 if native_bf16(isa_summary())[0] else torch.float32)
    ids = prompts(1, 6, seed=12)
    dec = FastDecoder(model, max_batch_size=1, max_cache_len=24, gemm_template=True)
    res, code = run_and_get_code(lambda: dec.generate(ids, 8))
    eager = FastDecoder(model, max_batch_size=1, max_cache_len=24, compile=False).generate(ids, 8)
    assert dec.compiled and dec.frozen and not dec.gemv, dec.reason
    assert "autotuned C++ GEMM template" in dec.label and any("micro_gemm" in c for c in code)
    assert torch.equal(res.tokens, eager.tokens)
    # weights stored narrower than computed are not frozen (test above), so they get no template
    assert not FastDecoder(bf16_weights(llama()), max_batch_size=1, max_cache_len=8, gemm_template=True).gemm_template


def test_score_teacher_forces_through_the_step_and_matches_a_full_forward():
    model = llama(seed=3)
    ids = prompts(2, 10, seed=4)
    dec = FastDecoder(model, max_batch_size=2, max_cache_len=16, compile=False)
    with torch.inference_mode():
        full = model(input_ids=ids).logits[:, :-1]
    assert torch.allclose(dec.score(ids), full, atol=1e-4)


def test_hf_static_compile_score_runs_hf_compiled_decode_forward(cheap_hf_compile, count_compiled_calls):
    from workbench.decoding.fast_loop import hf_static_compile_score

    model = llama()
    timed = hf_generate(model, prompts(1, 9), 12, static_compile=True)     # the timed request: cache 9 + 12
    assert torch.equal(timed.tokens, hf_generate(model, prompts(1, 9), 12).tokens)
    calls, cache = count_compiled_calls(model), model._cache
    ids = prompts(1, 10, seed=3)
    logits, path = hf_static_compile_score(model, ids)
    assert calls[0] == 10 - 2                    # every position after the eager prefill of the first token
    assert logits.shape == (1, 9, 256) and "compiled decode forward" in path and "timed requests' static" in path
    with torch.inference_mode():
        eager = model(input_ids=ids).logits[:, :-1]
    assert torch.allclose(logits, eager, atol=1e-4)
    assert model._cache is cache                 # the timed request's static cache, reused: the timed graph's shapes
