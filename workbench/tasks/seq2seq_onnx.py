"""Encoder-decoder models to ONNX through optimum (encoder + decoder with past), and a runner that generates.

optimum writes ``encoder_model.onnx``, ``decoder_model.onnx``, ``decoder_with_past_model.onnx`` (and a merged
decoder); ``ORTModelForSeq2SeqLM`` runs them with the KV cache and HF's own ``generate``, so greedy search is the same
algorithm on both sides and the export is checked token for token against the torch model's greedy output.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

from workbench.core import Variant, lineage_id

EXPORT_TASK = "text2text-generation-with-past"


class OnnxSeq2SeqMismatch(RuntimeError):
    """The exported model's greedy output differs from the torch model's."""


class Seq2SeqOrtRunner:
    """ONNX Runtime encoder + decoder-with-past from an optimum export directory, at a fixed thread count.

    ``runner(inputs)`` returns the logits of ``input_ids``/``attention_mask``/``decoder_input_ids`` (timing, agreement);
    ``runner.generate_seq2seq(batch, max_new_tokens)`` returns greedy ids [B, T] (quality, generation timing);
    ``generate_greedy(input_ids, n)`` makes exactly n tokens (batching sweeps).
    """

    def __init__(self, onnx_dir: str | Path, threads: int | None = None):
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForSeq2SeqLM

        from workbench.runtime.threads import check_threads, default_threads

        self.onnx_dir = Path(onnx_dir)
        self.threads = check_threads(threads) or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.model = ORTModelForSeq2SeqLM.from_pretrained(self.onnx_dir, session_options=options, use_cache=True,
                                                          provider="CPUExecutionProvider")
        start = getattr(self.model.config, "decoder_start_token_id", None)
        generation = getattr(self.model, "generation_config", None)
        self.start_id = start if start is not None else getattr(generation, "decoder_start_token_id", None)

    def with_threads(self, threads: int) -> "Seq2SeqOrtRunner":
        return Seq2SeqOrtRunner(self.onnx_dir, threads)

    def __call__(self, inputs: dict) -> torch.Tensor:
        from workbench.tasks.text2text import with_decoder_start

        inputs = with_decoder_start(inputs, self.start_id)
        ids = torch.as_tensor(inputs["input_ids"])
        mask = torch.as_tensor(inputs.get("attention_mask", torch.ones_like(ids)))
        return self.model(input_ids=ids, attention_mask=mask,
                          decoder_input_ids=torch.as_tensor(inputs["decoder_input_ids"])).logits

    def generate_greedy(self, input_ids: torch.Tensor, max_new_tokens: int = 16) -> torch.Tensor:
        """Exactly ``max_new_tokens`` greedy tokens for unpadded sources (what batching sweeps time)."""
        ids = torch.as_tensor(input_ids)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return self.generate_seq2seq(batch, max_new_tokens, min_new_tokens=max_new_tokens)

    def generate_seq2seq(self, batch: dict, max_new_tokens: int, min_new_tokens: int = 0) -> torch.Tensor:
        feed = {k: torch.as_tensor(batch[k]) for k in ("input_ids", "attention_mask")}
        return self.model.generate(**feed, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                   min_new_tokens=min_new_tokens)


def _export(model: torch.nn.Module, dest: Path, opset: int | None) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    from workbench.util.files import publish_dir, write_checksums

    # A copy: the exporter patches the model and its configs (use_cache, attention) and does not undo all of it.
    work = copy.deepcopy(model).cpu().float().eval()
    with publish_dir(dest) as tmp:
        onnx_export_from_model(work, tmp, opset=opset, task=EXPORT_TASK, do_validation=False)
        write_checksums(tmp)


def greedy_agreement(torch_ids: torch.Tensor, onnx_ids: torch.Tensor) -> float:
    """Share of sequences whose greedy ids are identical (lengths included)."""
    same = [a.tolist() == b.tolist() for a, b in zip(torch_ids, onnx_ids)]
    return sum(same) / len(same)


def export_seq2seq(variant: Variant, batches: list[dict], max_new_tokens: int = 16, out_dir: str | Path | None = None,
                   threads: int | None = None, opset: int | None = None) -> Variant:
    """Export a torch seq2seq variant with optimum and return the ONNX Runtime variant, validated on ``batches``.

    Args:
        variant: a torch variant of an encoder-decoder (``task.baseline()`` of a :class:`Text2TextTask`).
        batches: encoded sources (``task.encode(texts)``) whose greedy outputs must match token for token.
        max_new_tokens: tokens generated per source in the check.

    Raises OnnxSeq2SeqMismatch naming the first differing source when the outputs differ.
    """
    from workbench.runtime import require_torch_module
    from workbench.tasks.hf_loading import is_seq2seq
    from workbench.util.files import artifacts_root

    model = require_torch_module(variant, "export_seq2seq", "export the task's torch baseline")
    if not is_seq2seq(model):
        raise ValueError(f"export_seq2seq needs an encoder-decoder (T5, BART...), got {type(model).__name__}: "
                         "use ExportOnnxConfig for encoders and decoder-only LMs")
    config = {"task": EXPORT_TASK, "opset": opset, "max_new_tokens": max_new_tokens}
    child_id = lineage_id(variant.id, "export_seq2seq", config)
    dest = Path(out_dir or artifacts_root() / "onnx") / f"export_seq2seq-{child_id}"
    _export(model, dest, opset)
    runner = Seq2SeqOrtRunner(dest, threads)
    ort_variant = dataclasses.replace(variant, name="ort-fp32", backend="onnxruntime", device="cpu", precision="fp32",
                                      runner=runner, model=None, artifact_path=dest / "encoder_model.onnx",
                                      parent_id=variant.id, step="export_seq2seq", config=config,
                                      lineage=(*variant.lineage, ("export_seq2seq", config)), id="")
    checked = _validate(variant, ort_variant, batches, max_new_tokens)
    files = sorted(p.name for p in dest.glob("*.onnx"))
    return dataclasses.replace(ort_variant, meta={**variant.meta, "onnx_files": files, "export": checked},
                               id=ort_variant.id)


def _validate(torch_variant: Variant, ort_variant: Variant, batches: list[dict], max_new_tokens: int) -> dict:
    from workbench.tasks.text2text import generate_ids

    if not batches:
        raise ValueError("export_seq2seq needs at least one batch of encoded sources to validate against")
    agree, n, max_diff, scale = 0.0, 0, 0.0, 0.0
    for batch in batches:
        want = generate_ids(torch_variant, batch, max_new_tokens)
        got = generate_ids(ort_variant, batch, max_new_tokens)
        for i, (a, b) in enumerate(zip(want, got)):
            if a.tolist() != b.tolist():
                raise OnnxSeq2SeqMismatch(f"ONNX greedy output differs from torch on source {n + i}: torch "
                                          f"{a.tolist()} vs onnx {b.tolist()}; re-export with another opset")
        start = want[:, :1]
        feed = {**batch, "decoder_input_ids": start}
        ref = torch_variant(feed).float()
        max_diff = max(max_diff, float((ref - ort_variant(feed).float()).abs().max()))
        scale = max(scale, float(ref.abs().max()))  # the size of the logits the difference is read against
        agree += greedy_agreement(want, got) * len(want)
        n += len(want)
    return {"greedy_identical": agree == n, "sequences_checked": n, "max_new_tokens": max_new_tokens,
            "first_step_max_abs_diff": max_diff, "first_step_max_abs_logit": scale}
