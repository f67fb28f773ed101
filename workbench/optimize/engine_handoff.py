"""The hand-off of a causal-LM optimize run: the vLLM engine bundle (``serving.engine.export``) of the pick.

The engine checkpoint carries float weights (written bf16) and the workbench's weight-only int8 / int4. A pick whose
technique it carries ships as that spec; a pick it cannot carry as measured (an ONNX Runtime graph, an int8 KV cache,
a compiled loop) ships the nearest spec it can, and the note says which and why: the engine runs its own kernels, so
the bundle carries the pick's weights, not its CPU decode loop.

The load check (:func:`load_check`) serves the bundle on vLLM (loopback, its own process group, pinned apart from the
client) and offers one open-loop Poisson point at half the idle engine's one-at-a-time capacity, in the search's own
request shape, judged on the search's SLO (ITL at its percentile, every token interval of the point's requests). It
needs the engine venv (``make serve-env``) and the time to start vLLM (about 90 s on a 2-core CPU): optimize runs it
when the budget holds ``LOAD_CHECK_S`` and says why not otherwise; ``workbench load --engine`` measures the whole
rate ladder.
"""
from __future__ import annotations

from pathlib import Path

LOAD_CHECK_S = 240        # the check's budget: vLLM's start-up on CPU (~90 s here), the idle requests and one point
LOAD_REQUESTS = 40        # requests of the point: an ITL p99 over ~40 x (new - 1) token intervals

# arm -> (engine spec, note when the spec is not exactly what was measured)
SPECS = {
    "hf-generate-fp32": ("baseline", "float weights are written bf16 (the engine's float type)"),
    "hf-static-compile-fp32": ("baseline", "float weights written bf16; the compiled static-cache loop is the "
                                           "engine's own business"),
    "fast-loop-fp32": ("baseline", "float weights written bf16; the fast decode loop is the engine's own business"),
    "fast-loop-bf16": ("baseline", None),
    "fast-loop-bf16w": ("baseline", "the engine's bf16 checkpoint holds the same bf16 weights; vLLM computes its "
                                    "activations in bf16, not fp32 as this arm did"),
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
    """(``export --engine vllm --variant`` spec, note) for an LLM arm (a distilled student's arm: the spec of the arm
    it stacks, on the student's weights); unknown arms ship the baseline, said so."""
    from workbench.arms.distilled import PREFIX

    if arm.startswith(PREFIX) and arm[len(PREFIX):] in SPECS:
        return SPECS[arm[len(PREFIX):]]
    return SPECS.get(arm, ("baseline", f"{arm} is not an arm the engine checkpoint knows: float weights written bf16"))


def _engine_variant(s, name: str, spec: str):
    """The torch variant the bundle ships for arm ``name`` at ``spec``: the task's model, or for a student arm the
    student this run trained (the weight-only specs applied to it as the export applies them to the teacher)."""
    from workbench.arms.distilled import PREFIX
    from workbench.serving.engine.export import engine_variant

    if not name.startswith(PREFIX):
        return engine_variant(s.task, spec)
    from workbench.arms.distilled_llm import lm_student

    student, _model = lm_student(s.ctx, s.arm(name).build.config)
    return engine_variant(s.task, spec, base=student)


def bundle(s, dest: Path) -> tuple[str | None, str]:
    """(bundle folder, what was shipped and why): the pick's spec (or the nearest), the baseline when no arm met the
    SLO; an export that fails falls back to the baseline with the reason."""
    from workbench.serving.engine.export import export_engine

    name = s.winner or s.baseline
    spec, note = engine_spec(name)
    e = s.entries.get(name)
    facts = {"optimize": {"arm": name, "engine_spec": spec, "slo": {"ms": s.slo_ms, "percentile": s.percentile,
                                                                    "on": "per output token (ITL)"},
                          "usd_per_1m_output_tokens": (e.usd_per_1m if e else None)}}
    notes = [note] if note else []
    try:
        path = export_engine(_engine_variant(s, name, spec), s.task, to=dest, overwrite=True, extra_facts=facts)
    except Exception as exc:  # noqa: BLE001 - e.g. an int4 layout vLLM refuses: ship the baseline with the reason
        if spec == "baseline":
            raise
        notes.append(f"exporting {spec} failed ({type(exc).__name__}: {str(exc)[:200]}); shipped its float "
                     "weights (spec baseline)")
        spec = "baseline"
        path = export_engine(_engine_variant(s, name, spec), s.task, to=dest, overwrite=True, extra_facts=facts)
    what = "the pick" if s.winner else "the baseline (no arm met the SLO)"
    return str(path), f"vLLM engine bundle of {what} {name} as --variant {spec}" + (
        f" ({'; '.join(notes)})" if notes else "")


def load_check_missing() -> str | None:
    """Why no engine can be started here (the engine venv is missing: ``make serve-env``), else None."""
    from workbench.serving.engine.envs import available

    ok, why = available()
    return None if ok else why


def load_check(bundle_dir: Path, slo_ms: float, percentile: str, prompt_tokens: int,
               new_tokens: int) -> tuple[dict, dict]:
    """(the decision's ``load_check``, the load row): the bundle served by vLLM with its own engine arguments,
    ``LOAD_REQUESTS`` Poisson arrivals at the Triton check's ``LOAD_FRACTION`` of the idle engine's capacity, each a
    ``prompt_tokens`` prompt and ``new_tokens`` streamed tokens (the own stream client), the SLO met when no request
    failed and the ITL at ``percentile`` is within ``slo_ms``."""
    import tempfile

    from workbench.optimize.handoff import LOAD_FRACTION
    from workbench.serving.engine.load import LATENCY_PREFIXES, SCENARIO, metric_columns, pinned
    from workbench.serving.engine.openai_client import run_schedule
    from workbench.serving.engine.search import idle_latency
    from workbench.serving.engine.server import split_cpus, start_server
    from workbench.serving.engine.workloads import Workload
    from workbench.serving.load.schedule import schedule

    bundle_dir = Path(bundle_dir)
    ckpt = bundle_dir / "checkpoint"
    workload = Workload("optimize", prompt_tokens, new_tokens)
    engine_cpus, client_cpus, shared = split_cpus()
    with tempfile.TemporaryDirectory(prefix="workbench-optimize-engine-") as tmp, \
            start_server(bundle_dir, Path(tmp) / "vllm.log", cpus=engine_cpus) as server:
        idle = idle_latency(server, ckpt, workload, client_cpus)
        rate = LOAD_FRACTION / idle["e2e_s_p50"]
        prompts, _lens = workload.prompts(ckpt, LOAD_REQUESTS, seed=0)
        with pinned(client_cpus):
            own = run_schedule(server.url, prompts, schedule(rate, LOAD_REQUESTS, "poisson", seed=0), new_tokens)
        server.check_alive()
        startup_s = server.startup_s
    tail = own.metrics.get(f"itl_ms_{percentile}")
    met = own.errors == 0 and tail is not None and tail <= slo_ms
    row = {"scenario": SCENARIO, "bundle": str(bundle_dir), "engine": "vllm", "client": "own", "arrival": "poisson",
           **workload.columns(), "offered_rate_per_s": round(rate, 4), "n_requests": LOAD_REQUESTS,
           "errors": own.errors, "client_cpu_share": round(own.client_cpu_s / own.wall_s, 3) if own.wall_s else None,
           "send_lag_p99_ms": own.send_lag_p99_ms, "engine_startup_s": startup_s, "idle": idle,
           "slo_itl_ms": slo_ms, "slo_percentile": percentile, "meets_slo": met,
           **metric_columns(own.metrics, LATENCY_PREFIXES + ("output_tokens",))}
    check = {"rate_per_s": round(rate, 3), "tail_ms": tail, "percentile": percentile, "latency": "ITL per output token",
             "slo_met": met, "outcome": "pass" if met else "miss", "errors": own.errors,
             "engine_startup_s": startup_s, **({"note": shared} if shared else {})}
    return check, row


__all__ = ["bundle", "engine_spec", "load_check", "load_check_missing", "SPECS", "LOAD_CHECK_S"]
