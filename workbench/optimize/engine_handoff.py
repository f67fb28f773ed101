"""The hand-off of a causal-LM optimize run: the vLLM engine bundle (``serving.engine.export``) of the pick.

The engine checkpoint carries float weights (written bf16) and the workbench's weight-only int8 / int4. A pick whose
technique it carries ships as that spec; a pick it cannot carry as measured (an ONNX Runtime graph, an int8 KV cache,
a compiled loop) ships the nearest spec it can, and the note says which and why: the engine runs its own kernels, so
the bundle carries the pick's weights, not its CPU decode loop.

The load check starts vLLM, which takes minutes on CPU: it is optional (``.engine-venv`` must exist) and skipped with
the reason here; ``workbench load --engine`` on the bundle measures it.
"""
from __future__ import annotations

from pathlib import Path

# arm -> (engine spec, note when the spec is not exactly what was measured)
SPECS = {
    "hf-generate-fp32": ("baseline", "float weights are written bf16 (the engine's float type)"),
    "hf-static-compile-fp32": ("baseline", "float weights written bf16; the compiled static-cache loop is the "
                                           "engine's own business"),
    "fast-loop-fp32": ("baseline", "float weights written bf16; the fast decode loop is the engine's own business"),
    "fast-loop-bf16": ("baseline", None),
    "hf-generate-bf16": ("baseline", None),
    "hf-int8-wo": ("int8-wo", None),
    "fast-loop-int8-wo": ("int8-wo", None),
    "hf-int4-wo": ("int4-wo", None),
    "fast-loop-int4-wo": ("int4-wo", None),
    "hf-kv-int8": ("baseline", "the engine checkpoint has no int8 KV cache: float weights written bf16 (vLLM's "
                               "kv_cache_dtype is an engine argument, searched by `workbench load --search`)"),
    "ort-fp32-kv": ("baseline", "vLLM loads Hugging Face weights, not ONNX: float weights written bf16"),
    "ort-int8-matmulnbits": ("int8-wo", "vLLM loads Hugging Face weights, not ONNX: the nearest it carries is the "
                                        "workbench's weight-only int8 (per channel) of the same model"),
    "ort-int4-matmulnbits": ("int4-wo", "vLLM loads Hugging Face weights, not ONNX: the nearest it carries is the "
                                        "workbench's weight-only int4 (groups of 128) of the same model"),
    "llama-cpp-f32": ("baseline", "vLLM loads Hugging Face weights, not GGUF: float weights written bf16 (serve the "
                                  "GGUF with llama.cpp's own server to keep this arm's figures)"),
    "llama-cpp-bf16": ("baseline", "vLLM loads Hugging Face weights, not GGUF: the same bf16 weights as a Hugging "
                                   "Face checkpoint"),
}


def engine_spec(arm: str) -> tuple[str, str | None]:
    """(``export --engine vllm --variant`` spec, note) for an LLM arm; unknown arms ship the baseline, said so."""
    return SPECS.get(arm, ("baseline", f"{arm} is not an arm the engine checkpoint knows: float weights written bf16"))


def bundle(s, dest: Path) -> tuple[str | None, str]:
    """(bundle folder, what was shipped and why): the pick's spec (or the nearest), the baseline when no arm met the
    SLO; an export that fails falls back to the baseline with the reason."""
    from workbench.serving.engine.export import engine_variant, export_engine

    name = s.winner or s.baseline
    spec, note = engine_spec(name)
    e = s.entries.get(name)
    facts = {"optimize": {"arm": name, "engine_spec": spec, "slo": {"ms": s.slo_ms, "percentile": s.percentile,
                                                                    "on": "per output token (ITL)"},
                          "usd_per_1m_output_tokens": (e.usd_per_1m if e else None)}}
    notes = [note] if note else []
    try:
        path = export_engine(engine_variant(s.task, spec), s.task, to=dest, overwrite=True, extra_facts=facts)
    except Exception as exc:  # noqa: BLE001 - e.g. an int4 layout vLLM refuses: ship the baseline with the reason
        if spec == "baseline":
            raise
        notes.append(f"exporting {spec} failed ({type(exc).__name__}: {str(exc)[:200]}); shipped the baseline")
        spec = "baseline"
        path = export_engine(engine_variant(s.task, spec), s.task, to=dest, overwrite=True, extra_facts=facts)
    what = "the pick" if s.winner else "the baseline (no arm met the SLO)"
    return str(path), f"vLLM engine bundle of {what} {name} as --variant {spec}" + (
        f" ({'; '.join(notes)})" if notes else "")


def load_check_missing() -> str | None:
    """Why optimize runs no engine load check here (always a reason in this version: starting vLLM on CPU takes
    minutes, more than a short check; the bundle's own ``workbench load`` measures it)."""
    from workbench.serving.engine.envs import available

    ok, why = available()
    if not ok:
        return why
    return ("starting vLLM takes minutes on this CPU, beyond a short check: run `workbench load --engine` on the "
            "bundle to measure it under load")


__all__ = ["bundle", "engine_spec", "load_check_missing", "SPECS"]
