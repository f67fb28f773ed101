"""The exported checkpoint measured in-process, and the served goodput predicted from it.

:func:`checkpoint_model` loads ``bundle/checkpoint`` (the very folder vLLM serves) with the workbench's own kernels: a
bf16 checkpoint through transformers; a compressed-tensors int8 / int4 one (written by
:mod:`workbench.serving.engine.checkpoint`) dequantised into the bf16 model and quantised again by the workbench's
weight-only step of the same width (:func:`workbench.steps.weight_only.apply_weight_only`), so its decode reads
int8 / int4 weights as the served engine does (vLLM's CPU kernels differ: int8 is served as W8A8 there).

:func:`checkpoint_step_times` times it on the engine's cores (:func:`workbench.measure.step_times.measure_step_times`:
prefill at batch 1, decode step at batch 1, 2, 4, ... ``max_num_seqs``), and :func:`predict_candidate` feeds the
figures to the continuous-batching simulation (:mod:`workbench.serving.engine.predict`) on the served climb's ladder
and SLO, and compares its goodput with the served one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

STEP_TIME_BAND = 0.10   # the prediction's sensitivity band: every step time 10% slower / faster


def _dequantised_state(ckpt: Path, bits: int, group_size: int | None, dtype) -> dict:
    """The checkpoint's tensors with every compressed-tensors weight turned back into a ``dtype`` ``weight``
    (q x scale computed in fp32)."""
    import torch
    from safetensors.torch import load_file

    from workbench.serving.engine.checkpoint import unpack_int32

    path = ckpt / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the engine checkpoint is one model.safetensors (re-export it with "
                                "`workbench export --engine vllm`)")
    state = load_file(str(path))
    out = {}
    for key, value in state.items():
        if key.endswith((".weight_scale", ".weight_shape")):
            continue
        prefix = key.rsplit(".", 1)[0]
        scale = state.get(f"{prefix}.weight_scale")
        if key.endswith(".weight_packed"):              # int4, symmetric groups along the input axis
            rows, cols = state[f"{prefix}.weight_shape"].tolist()
            q = unpack_int32(value, bits, cols).float().view(rows, -1, group_size or cols)
            out[f"{prefix}.weight"] = (q * scale.float()[..., None]).view(rows, cols).to(dtype)
        elif key.endswith(".weight") and scale is not None:   # int8 per output channel
            out[key] = (value.float() * scale.float()).to(dtype)
        else:
            out[key] = value
    return out


def dequantised_model(checkpoint: str | Path, dtype=None):
    """``(model, bits, group_size)``: the engine checkpoint loaded by transformers in ``dtype`` (default bf16),
    safetensors only. A compressed-tensors int8 / int4 one (the layout :mod:`workbench.serving.engine.checkpoint`
    writes) comes back with every weight dequantised (q x scale); ``bits`` is None for a float checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = dtype or torch.bfloat16
    ckpt = Path(checkpoint)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"{ckpt} has no config.json: pass an engine bundle's checkpoint folder "
                                "(bundle/checkpoint)")
    cfg = json.loads((ckpt / "config.json").read_text())
    quant = cfg.pop("quantization_config", None)
    if quant is None:
        return AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=dtype, use_safetensors=True).eval(), None, None
    if quant.get("quant_method") != "compressed-tensors" or "group_0" not in quant.get("config_groups", {}):
        raise ValueError(f"{ckpt}: quantization_config {quant.get('quant_method')!r} is not the compressed-tensors "
                         "layout the workbench writes: export the checkpoint with `workbench export --engine vllm`")
    weights = quant["config_groups"]["group_0"]["weights"]
    bits, group = int(weights["num_bits"]), weights.get("group_size")
    config = AutoConfig.for_model(**cfg)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    missing, unexpected = model.load_state_dict(_dequantised_state(ckpt, bits, group, dtype), strict=False)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{ckpt}: the checkpoint does not match its config (missing {missing[:4]}, unexpected "
                         f"{unexpected[:4]}): re-export it")
    if tied:
        model.tie_weights()
    return model, bits, group


def checkpoint_model(checkpoint: str | Path, dtype: str | None = None):
    """``(model, precision)``: the engine checkpoint loaded for in-process timing (module doc) in the engine's compute
    ``dtype`` (``EngineArgs.dtype``, e.g. "float32"; default bf16); safetensors only."""
    import torch

    from workbench.steps.weight_only import apply_weight_only

    model, bits, group = dequantised_model(checkpoint, getattr(torch, dtype) if dtype else None)
    if bits is None:
        return model, "bf16"
    return apply_weight_only(model, bits, group or 128), f"int{bits}"


def checkpoint_step_times(checkpoint: str | Path, workload, max_num_seqs: int, cpus=None,
                          seconds_per_batch: float | None = None, progress: bool = False, dtype: str | None = None):
    """In-process :class:`~workbench.measure.step_times.StepTimes` of the checkpoint for ``workload`` (its prompt and
    answer lengths) at batch 1, 2, 4, ... ``max_num_seqs`` in the engine's compute ``dtype`` (default bf16), on
    ``cpus`` (default: the engine's cores,
    :func:`~workbench.serving.engine.server.split_cpus`) with one torch thread per core; torch's previous thread
    count and this process's affinity are restored after."""
    import torch

    from workbench.measure.step_times import batch_sizes, measure_step_times
    from workbench.serving.engine.load import pinned
    from workbench.serving.engine.server import split_cpus
    from workbench.serving.engine.workloads import get_workload
    from workbench.util.settings import small_mode

    wl = get_workload(workload) if isinstance(workload, str) else workload
    cpus = list(cpus) if cpus is not None else split_cpus()[0]
    seconds = seconds_per_batch if seconds_per_batch is not None else (1.0 if small_mode() else 3.0)
    model, precision = checkpoint_model(checkpoint, dtype)
    threads = torch.get_num_threads()
    try:
        with pinned(cpus):
            times = measure_step_times(model, wl.prompt_tokens, wl.new_tokens, batch_sizes(max_num_seqs), seconds,
                                       threads=len(cpus), progress=progress)
    finally:
        torch.set_num_threads(threads)
    return times, precision


def predict_candidate(candidate, result, seconds_per_batch: float | None = None, progress: bool = False) -> dict:
    """Predict a served engine candidate's goodput from its checkpoint measured in-process, and the error.

    ``candidate``: an :class:`~workbench.serving.engine.search.EngineCandidate` the search climbed (its bundle,
    engine arguments, start rate, served goodput and, for the default and the confirmation, its engine's idle
    latency); ``result``: the search's :class:`~workbench.serving.engine.search.EngineSearchResult` (SLO, workload,
    attainment, point length, climb length).

    Two predictions from the same in-process step times: ``predicted_goodput_per_s``, calibrated to the candidate's
    served idle point (:func:`~workbench.serving.engine.predict.calibrated`: one idle request's TTFT and ITL on its
    engine, no load, and where the search measured one, the ITL of a burst of ``max_num_seqs`` requests), and
    ``predicted_goodput_uncalibrated_per_s`` from the in-process times alone; each with its error = (predicted -
    served) / served x 100, and the two in-process over served idle ratios the uncalibrated error starts from. A
    candidate without an idle point gets the uncalibrated prediction as its figure. The continuous limit is quoted
    with its band: every step time ``STEP_TIME_BAND`` slower and faster."""
    from workbench.serving.engine.predict import calibrated, predict_goodput, prediction_error_pct, scaled

    t0 = time.perf_counter()
    wl, args = result.workload, candidate.args
    times, precision = checkpoint_step_times(candidate.bundle / "checkpoint", wl, args.max_num_seqs,
                                             seconds_per_batch=seconds_per_batch, progress=progress,
                                             dtype=args.dtype)
    measured_s = time.perf_counter() - t0

    def predict(step_times):
        return predict_goodput(step_times, wl.new_tokens, args.max_num_seqs, result.slo_ttft_ms, result.slo_itl_ms,
                               attainment=result.attainment, start_rate=candidate.start_rate,
                               point_s=result.point_s, max_points=result.max_points, prompt_tokens=wl.prompt_tokens,
                               max_num_batched_tokens=args.max_num_batched_tokens,
                               min_requests=candidate.min_requests, max_halvings=candidate.halvings)

    raw = predict(times)
    idle, out = candidate.idle or {}, {}
    if idle.get("ttft_ms_p50") and idle.get("itl_ms_p50"):
        burst, burst_itl = idle.get("burst_size"), idle.get("burst_itl_ms_p50")
        has_burst = bool(burst and burst_itl)
        cal = calibrated(times, idle["ttft_ms_p50"], idle["itl_ms_p50"], burst, burst_itl)
        pred = predict(cal)
        out = {"served_idle_ttft_ms_p50": idle["ttft_ms_p50"], "served_idle_itl_ms_p50": idle["itl_ms_p50"],
               "inprocess_over_served_idle_ttft": round(times.prefill_s * 1e3 / idle["ttft_ms_p50"], 3),
               "inprocess_over_served_idle_itl": round(times.tpot_at(1) * 1e3 / idle["itl_ms_p50"], 3),
               "calibrated_to_served_idle": True, "calibrated_to_served_burst": has_burst}
        if has_burst:
            out.update(served_burst_size=burst, served_burst_itl_ms_p50=burst_itl,
                       inprocess_over_served_burst_itl=round(times.tpot_at(burst) * 1e3 / burst_itl, 3))
    else:
        cal, pred, out = times, raw, {"calibrated_to_served_idle": False}
    # The continuous limit with every step time STEP_TIME_BAND slower and faster: near the SLO's edge a few percent of
    # step time moved it x2.4 (AVX2, 134M fp32: two bursts 7% apart predicted 0.41/s and 0.99/s), so the figure is
    # quoted with the band it sits in.
    band = [predict(scaled(cal, 1 + sign * STEP_TIME_BAND)).bisect_per_s for sign in (1, -1)]
    served = candidate.goodput_per_s
    return {"label": candidate.label, "stage": candidate.stage, "precision_inprocess": precision, **out,
            "served_goodput_per_s": served, **pred.as_dict(),
            "predicted_vs_served_goodput_error_pct": pred.error_pct(served),
            "predicted_bisect_vs_served_error_pct": pred.bisect_error_pct(served),
            "step_time_band_pct": round(100 * STEP_TIME_BAND), "predicted_goodput_bisect_band_per_s": band,
            "predicted_goodput_uncalibrated_per_s": raw.goodput_per_s,
            "predicted_uncalibrated_vs_served_goodput_error_pct": prediction_error_pct(raw.goodput_per_s, served),
            "step_times_inprocess": times.as_dict(),
            "measure_seconds": round(measured_s, 1),
            "simulate_seconds": round(time.perf_counter() - t0 - measured_s, 2)}


def predict_search(result, seconds_per_batch: float | None = None, progress=None) -> dict:
    """:func:`predict_candidate` for a finished engine search's confirmed winner and its default (vLLM's defaults on
    the first checkpoint), measured one after the other once no engine runs. Returns ``{"winner": ...,
    "default": ...}``; a candidate that was not climbed, or whose prediction failed, is ``{"error": reason}``."""
    say = progress or (lambda msg: None)
    out = {}
    for key, cand in (("winner", result.confirmed), ("default", result.default)):
        if cand is None or cand.error or not cand.rows:
            out[key] = {"error": f"no served climb to compare ({cand.error if cand else 'no candidate'})"}
            continue
        say(f"  in-process step times of {cand.label} ({cand.bundle / 'checkpoint'}) ...")
        try:
            out[key] = predict_candidate(cand, result, seconds_per_batch, progress=progress is not None)
        except Exception as exc:   # the figure is then absent with the reason; the benchmark's other figures stay
            out[key] = {"label": cand.label, "error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
            continue
        p = out[key]
        say(f"  {cand.label}: prefill {p['step_times']['prefill_ms']} ms, TPOT ms by batch "
            f"{p['step_times']['tpot_ms']}; predicted {p['predicted_goodput_per_s']}/s (bisection "
            f"{p['predicted_goodput_bisect_per_s']}/s) vs served {p['served_goodput_per_s']}/s: error "
            f"{p['predicted_vs_served_goodput_error_pct']}%")
    return out


__all__ = ["dequantised_model", "checkpoint_model", "checkpoint_step_times", "predict_candidate", "predict_search"]
