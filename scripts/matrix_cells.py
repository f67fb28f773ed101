"""The cells of the architecture matrix (``scripts/architecture_matrix.py``): one function per step.

A cell gets the architecture's :class:`State` (task, baseline and ONNX export made once, shared by later cells)
and returns ``"ok..."`` after checking values that could be wrong, or ``"n/a: <reason>"``; it raises on failure.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

import architecture_matrix as am

PENDING_TEXT2TEXT = "n/a: pending text2text task (workbench/tasks/text2text.py)"


def text2text_ready() -> bool:
    import importlib.util

    return importlib.util.find_spec("workbench.tasks.text2text") is not None


class State:
    """What the cells of one architecture share: built lazily, so a failing export fails only its dependants."""

    def __init__(self, arch: str, role: str, root: Path):
        self.arch, self.role, self.root = arch, role, Path(root)

    @cached_property
    def task(self):
        return am.make_task(self.arch, self.root)

    @cached_property
    def baseline(self):
        return self.task.baseline()

    @cached_property
    def inputs(self) -> dict:
        return self.task.example_inputs(2, am.SEQ)

    @cached_property
    def onnx(self):
        from workbench.core import apply
        from workbench.steps.export_onnx import ExportOnnxConfig

        return apply(self.baseline, ExportOnnxConfig(batch_sizes=(1, 2, 3), seq_lens=(4, 8, am.SEQ),
                                                     out_dir=str(self.root / "onnx")))

    def prompt(self, n: int = 6) -> torch.Tensor:
        return self.task.prompts(1, n)[0]


ONE_GRAPH = "n/a: seq2seq export is several graphs (encoder + decoders); this step rewrites one"
NO_SEQ2SEQ_BUNDLE = "n/a: the bundle ships one ONNX graph; seq2seq (encoder + decoders) bundles not built yet"


def _not_built(state: State, one_graph: bool = False) -> str | None:
    """The reason a cell does not apply to this role (None: it does)."""
    if state.role != "encoder-decoder":
        return None
    if not text2text_ready():
        return PENDING_TEXT2TEXT
    return ONE_GRAPH if one_graph else None


def _refused(step) -> str:
    """The n/a cell of a one-graph step on a seq2seq export, once the step is seen refusing it with the reason."""
    from workbench.steps.onnx_io import MultiGraphError

    try:
        step()
    except MultiGraphError:
        return ONE_GRAPH
    raise AssertionError("a one-graph step accepted a multi-graph seq2seq export")


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, what: str) -> float:
    diff = float((a.float() - b.float()).abs().max())
    if a.shape != b.shape or not math_finite(b) or diff > atol:
        raise AssertionError(f"{what}: shape {tuple(b.shape)} vs {tuple(a.shape)}, max |diff| {diff:.2e} > {atol}")
    return diff


def math_finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def measure(s: State) -> str:
    from workbench.measure import measure_variant

    if _not_built(s):
        return _not_built(s)
    row = measure_variant(s.task, s.baseline, batch_size=2, seq_len=am.SEQ, eval_limit=8, max_seconds=0.3)
    assert row["latency_p50_ms"] > 0 and row["quality_n"] > 0 and row["quality_ci_low"] <= row["quality"]
    return f"ok: {row['metric']}"


def export_onnx(s: State) -> str:
    if _not_built(s):
        return _not_built(s)
    facts = s.onnx.meta["export"]
    if s.role == "encoder-decoder":
        assert facts["greedy_identical"] and facts["sequences_checked"] > 0, facts
        return f"ok: {len(s.onnx.meta['onnx_files'])} graphs, greedy = torch"
    if s.role != "decoder":
        return f"ok: {facts['grid_points']} grid points"
    assert facts["kv_cache"] and facts["validated_kv_cache"], "decoder exported without a validated KV cache"
    # Greedy decoding through the ORT KV-cache runner must give the torch model's tokens.
    prompt = s.prompt()
    got = s.onnx.runner.generate_greedy(prompt, max_new_tokens=6)
    want = s.baseline.model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6,
                                     min_new_tokens=6, do_sample=False, pad_token_id=am.EOS)
    assert torch.equal(got, want), f"ORT cached greedy {got.tolist()} != torch {want.tolist()}"
    return "ok: KV cache, greedy = torch"


def optimize_o3(s: State) -> str:
    from workbench.core import apply
    from workbench.steps.optimize import OptimizeConfig

    if _not_built(s):
        return _not_built(s)
    if s.role == "encoder-decoder":
        return _refused(lambda: apply(s.onnx, OptimizeConfig(level="O3", out_dir=str(s.root / "onnx"))))
    fused = apply(s.onnx, OptimizeConfig(level="O3", out_dir=str(s.root / "onnx")))
    _close(s.onnx(s.inputs), fused(s.inputs), 1e-2, "O3 logits vs export")  # FastGelu: ~1e-3 off erf GELU
    level, family = fused.meta["optimize_level"], fused.meta["optimizer_family"]
    if level == "O3":
        return f"ok: O3 ({family} fusions)"
    assert "no fusions" in fused.meta["optimize_note"], "O1 fallback without its note"
    return f"ok: O1 + note (no ORT fusions for {s.baseline.model.config.model_type})"


def int8_dynamic_torch(s: State) -> str:
    from workbench.core import apply
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    if _not_built(s):
        return _not_built(s)
    q = apply(s.baseline, QuantizeDynamicConfig())
    _close(s.baseline(s.inputs), q(s.inputs), 0.5, "torch int8 logits vs fp32")
    linears = sum(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in q.model.modules())
    assert linears > 0, "no Linear layer was quantised"
    return "ok"


def int8_dynamic_ort(s: State) -> str:
    from workbench.core import apply
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    if _not_built(s):
        return _not_built(s)
    if s.role == "encoder-decoder":
        return _refused(lambda: apply(s.onnx, QuantizeDynamicConfig(out_dir=str(s.root / "onnx"))))
    q = apply(s.onnx, QuantizeDynamicConfig(out_dir=str(s.root / "onnx")))
    _close(s.onnx(s.inputs), q(s.inputs), 0.5, "ORT dynamic int8 logits vs fp32")
    assert q.meta["node_counts"]["quantized_nodes"] > 0
    return "ok"


def int8_static(s: State) -> str:
    from workbench.core import apply
    from workbench.steps.quantize import QuantizeStaticConfig, calibrate

    if _not_built(s):
        return _not_built(s)
    if s.role == "encoder-decoder":
        batches = s.task.calibration_batches(8, 8, am.SEQ)
        return _refused(lambda: calibrate(s.onnx, batches, out_dir=s.root / "calibration"))
    ranges = calibrate(s.onnx, s.task.calibration_batches(16, 8, am.SEQ), out_dir=s.root / "calibration")
    q = apply(s.onnx, QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=str(s.root / "onnx")))
    _close(s.onnx(s.inputs), q(s.inputs), 0.5, "static int8 logits vs fp32")
    assert q.meta["node_counts"]["quantized_nodes"] > 0
    if s.role != "decoder":
        return "ok"
    assert q.meta["calibration"]["kv_cache_calibrated"], "decoder calibrated without its past_key_values"
    assert q.runner.generate_greedy(s.prompt(), max_new_tokens=3).shape[1] == 9
    return "ok: prefill + cached-step calibration"


def distill(s: State) -> str:
    from workbench.core import apply
    from workbench.steps.distill import DistillConfig
    from workbench.runtime.families import shape_of

    if s.role == "encoder-decoder":
        return "n/a: distillation recipes cover classifiers and causal LMs, not seq2seq"
    teacher = shape_of(s.baseline.model.config)
    config = DistillConfig.tiny(num_layers=1, hidden_size=teacher.hidden_size // 2, max_steps=2, max_length=am.SEQ,
                                train_data=am.train_file(s.root, s.arch))
    student = shape_of(apply(s.baseline, config).model.config)
    assert (student.num_layers, student.hidden_size) == (1, teacher.hidden_size // 2)
    assert student.ffn_width == teacher.ffn_width // 2, f"ffn {student.ffn_width} != {teacher.ffn_width} / 2"
    return f"ok: 1x{student.hidden_size}, ffn {student.ffn_width}"


def _sweep(s: State) -> list[dict]:
    from workbench.measure.batching import SweepConfig, sweep_batching

    if not hasattr(s, "_rows"):
        cfg = SweepConfig(batch_sizes=(1, 2), seq_lens=(am.SEQ,), output_lens=(4,), point_seconds=0.3, retries=0,
                          percentile="p50")
        s._rows = sweep_batching(s.task, s.onnx, cfg, progress=False)
    return s._rows


def sweep(s: State) -> str:
    if _not_built(s):
        return _not_built(s)
    rows = _sweep(s)
    bad = [r.get("failure") or r.get("error") for r in rows if r.get("failed")]
    assert len(rows) == 2 and not bad, f"sweep points failed: {bad}"
    return "ok: " + rows[0]["scenario"]


def bundle_verify(s: State) -> str:
    from workbench.serving.bundle.export import export_bundle
    from workbench.serving.bundle.verify import verify_bundle

    if _not_built(s):
        return _not_built(s)
    if s.role == "encoder-decoder":
        return NO_SEQ2SEQ_BUNDLE
    # Timing plumbing only: 0.3 s points are rarely "stable", so the plan is allowed to be provisional here.
    bundle = export_bundle(s.onnx, _sweep(s), to=s.root / "bundle", task=s.task, percentile="p50",
                           allow_unstable=True, n_reference=2, overwrite=True)
    report = verify_bundle(bundle, raise_on_error=False)
    assert report.ok, f"verify: {report}"
    return "ok"


def speculative(s: State) -> str:
    from workbench.decoding.drafters import ModelDrafter
    from workbench.decoding.speculative import autoregressive_generate, speculative_generate

    if s.role == "encoder":
        return "n/a: a classifier generates no tokens"
    if s.role == "encoder-decoder":
        return "n/a: the speculative engine drives decoder-only LMs"
    target, prompt = s.baseline.model, s.prompt()[0]
    out, stats = speculative_generate(target, ModelDrafter(s.task.load_draft(), target), prompt, gamma=3,
                                      max_new_tokens=8)
    ref, _ = autoregressive_generate(target, prompt, max_new_tokens=8)
    assert torch.equal(out, ref), "speculative output differs from greedy decoding"
    return "ok: same-family draft, = greedy"


CELLS = {"measure": measure, "export_onnx": export_onnx, "optimize_o3": optimize_o3,
         "int8_dynamic_torch": int8_dynamic_torch, "int8_dynamic_ort": int8_dynamic_ort, "int8_static": int8_static,
         "distill": distill, "sweep": sweep, "bundle_verify": bundle_verify, "speculative": speculative}
