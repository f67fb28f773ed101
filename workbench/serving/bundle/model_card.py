"""The bundle's MODEL_CARD.md, written only from measured facts (export_bundle passes them in)."""
from __future__ import annotations

from workbench.measure.timing import MIN_SAMPLES
from workbench.util.numbers import format_value


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]


def _load_section(load: dict, plan: dict) -> list[str]:
    """The serving config searched under open-loop load on Triton, with the measured curve it was chosen on."""
    win = load.get("winner") or {}
    lines = ["", "## Serving config (config.pbtxt), searched under load",
             f"Chosen by `workbench load --search` on a real Triton server (loopback, open-loop Poisson traffic, latency "
             f"from the scheduled send time), measured {load.get('measured_at')}: **{win.get('label')}** "
             f"(max_batch_size {win.get('max_batch_size')}, preferred {win.get('preferred_batch_sizes')}, queue delay "
             f"{win.get('max_queue_delay_us')} us, {win.get('instance_count')} instance(s), "
             f"{win.get('threads') or '-'} intra-op threads each).",
             f"Goodput {load.get('goodput') or format_value(load.get('goodput_per_s'))} requests/s with >= "
             f"{load['attainment']:.0%} of requests within {load['slo_ms']} ms"
             + (" (confirmed: the winner climbed again on a fresh server after the search)" if load.get("confirmed")
                else "")
             + f"; knee {format_value(load.get('knee_per_s'))}/s; p99 at goodput "
             f"{format_value(load.get('p99_at_goodput_ms'))} ms. Figures hold for the machine in Environment below."]
    base = load.get("best_baseline")
    if base:
        lines.append(f"Against the better baseline ({base['serving_config']}, {base['stage']}, same run): "
                     f"{base.get('goodput') or format_value(base['goodput_per_s'])} requests/s; ratio "
                     f"{format_value(load.get('goodput_over_best_baseline'))}.")
    lines.append("")
    lines += _table(["offered req/s", "p50 ms", "p99 ms", "within SLO", "valid"],
                    [[p["offered_per_s"], p["p50_ms"], p["p99_ms"], p["within_slo"], p["valid"]]
                     for p in load.get("curve") or []])
    lines += ["", "Candidates tried (goodput per config, same SLO, same machine, one run):", ""]
    lines += _table(["config", "stage", "goodput req/s", "knee req/s", "p99 at goodput ms"],
                    [[c["serving_config"], c["stage"], c["goodput_per_s"], c["knee_per_s"], c["p99_at_goodput_ms"]]
                     for c in load.get("candidates") or []])
    return lines + [f"- not tried (time budget): {s}" for s in load.get("skipped") or []]


def model_card(facts: dict, sweep: list[dict]) -> str:
    """Markdown card: intended use, lineage, quality with CI, latency/throughput, batching plan, cost, environment."""
    v, served, env, plan = facts["variant"], facts["served"], facts["environment"], facts["batching"]
    q = facts.get("quality")
    lines = [f"# Model card: {facts['name']}", "",
             "## Intended use",
             f"Workbench task `{facts.get('task')}`, served by Triton (ONNX Runtime backend) on "
             f"{'GPU' if served.get('device') == 'cuda' else 'CPU'}. Inputs and outputs are listed below; the "
             "tokenizer in `tokenizer/` turns text into the inputs. Use it for the data it was evaluated on; "
             "re-measure before relying on it for other inputs.", "",
             "## Lineage",
             f"Measured variant `{v['variant']}` (id {v['variant_id']}, {v['backend']}, {v['precision']}); served "
             f"ONNX variant `{served['variant']}` (id {served['variant_id']}).", ""]
    lines += [f"{i}. `{step['step']}`: `{step['config']}`" for i, step in enumerate(facts["lineage"], 1)] or ["(baseline)"]
    export = facts.get("export") or {}
    if export:
        lines += ["", f"ONNX opset {export.get('opset')}; validated against the parent: max |diff| "
                      f"{format_value(export.get('max_abs_diff'))}, top-1 agreement {format_value(export.get('top1_agreement'))} over "
                      f"{export.get('grid_points')} grid points."]
    lines += ["", "## Quality"]
    if q:
        lines += [f"{q.get('metric')} = {format_value(q.get('quality'))} (95% CI {format_value(q.get('quality_ci_low'))} to "
                  f"{format_value(q.get('quality_ci_high'))}, n = {q.get('quality_n')}, measured {q.get('measured_at', '-')} "
                  f"on variant `{q.get('variant', '-')}` (id {q.get('variant_id', '-')}))."]
    else:
        lines += ["Not measured in the results this bundle was made from: run `workbench measure` before relying on it."]
    swept_id = plan.get("variant_id") or (sweep[0].get("variant_id") if sweep else "-")
    threads = plan.get("threads") or (sweep[0].get("threads") if sweep else None) or "-"
    lines += ["", f"## Latency and throughput (seq_len {plan.get('seq_len')}, {env.get('cpu')}, {threads} threads)",
              f"Sweep of the served ONNX variant `{served['variant']}` (id {swept_id})"
              + (", measured by export itself." if plan.get("swept_at_export") else ".")
              + f" A percentile is shown only with enough timed calls behind it (p90 >= {MIN_SAMPLES['p90']}, p95 >= "
              f"{MIN_SAMPLES['p95']}, p99 >= {MIN_SAMPLES['p99']}); '-' where a point had fewer. Unstable points "
              "(timing windows that never agreed) are listed but not planned on.", ""]
    lines += _table(["batch", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "timed calls", "stable", "items/s", "peak RSS MB"],
                    [[r["batch_size"], r.get("latency_p50_ms"), r.get("latency_p90_ms"), r.get("latency_p95_ms"),
                      r.get("latency_p99_ms"), r.get("n_calls"), r.get("stable"), r.get("throughput_per_s"),
                      r.get("peak_rss_mb")] for r in sweep])
    slo = plan.get("slo")
    if facts.get("load"):
        lines += _load_section(facts["load"], plan)
    lines += ["", "## Batching plan from offline timings" + (" (replaced by the search above)" if facts.get("load")
                                                             else " (config.pbtxt)"),
              "max_batch_size {max_batch_size}, preferred batch sizes {preferred_batch_sizes}, max queue delay "
              "{max_queue_delay_us} us.".format(**(plan.get("offline_plan") or plan))]
    if slo:
        used = slo.get("percentile_used") or slo["percentile"]
        lines += [f"SLO {slo['percentile']} <= {slo['target_ms']} ms (read at {used}): {slo['reason']}; knee at batch "
                  f"{slo['knee_batch_size']}.",
                  f"The queue delay is a bound from offline timings, not a guarantee under load: a request can arrive "
                  f"just after a batch of {plan['max_batch_size']} started, wait for it, wait the queue delay, then run "
                  f"in its own batch, so delay = SLO - 2 x {used} latency at max_batch_size (floored at 0). Only a "
                  "load test on the serving side shows the tail under real traffic."]
    else:
        lines += ["No SLO given: max batch = largest stable measured batch under the sweep's latency cap, queue delay "
                  "= one batch-1 service time (a bound from offline timings, not a guarantee under load)."]
    lines += [f"- {note}" for note in list(plan.get("notes") or []) + list(plan.get("skipped") or [])]
    cost = facts["cost"]
    lines += ["", f"## Cost ({cost['instance']} at ${cost['usd_per_hour']}/h, {cost['source']}, {cost['date']}; "
                  f"utilisation {cost['utilisation']})"]
    split = any("usd_per_1m_output_tokens" in p for p in cost["points"])  # LMs: prompt and output priced apart
    lines += _table(["batch", "$/1k requests", "$/1M tokens"] + (["$/1M prompt tokens", "$/1M output tokens"] if split
                                                                else []),
                    [[p["batch_size"], p.get("usd_per_1k_requests"), p.get("usd_per_1m_tokens")]
                     + ([p.get("usd_per_1m_prompt_tokens"), p.get("usd_per_1m_output_tokens")] if split else [])
                     for p in cost["points"]])
    lines += ["", "## Interface"]
    lines += [f"- input `{s['name']}` {s['data_type']} dims {list(s['dims'])}" for s in facts["inputs"]]
    lines += [f"- output `{s['name']}` {s['data_type']} dims {list(s['dims'])}" for s in facts["outputs"]]
    pk = env.get("packages", {})
    lines += ["", "## Environment",
              f"CPU {env.get('cpu')} ({', '.join(env.get('cpu_isa') or [])}), GPU {env.get('gpu') or 'none'}, "
              f"torch {pk.get('torch')}, onnxruntime {pk.get('onnxruntime')}, git {env.get('git_revision')}.", "",
              "## Limitations",
              "- Latency, throughput and cost were measured on the machine above; re-run `workbench sweep` on the "
              "serving hardware before sizing a fleet.",
              "- Quality holds for the evaluation data named in the task; the CI is a bootstrap over its examples.",
              f"- An output differs by up to {facts['reference']['batch_noise']:.2g} (max |diff|, measured on the "
              "reference examples) between running alone and in a batch: dynamically quantised models pick "
              "activation scales per batch, float models only reorder sums.",
              *(["- Causal LM: the served graph is one full-sequence forward (scoring / prefill, no KV cache); the "
                 "batching plan above comes from the generation sweep (prompt + output tokens), so it is conservative "
                 "for that forward."] if any(r.get("output_len") for r in sweep) else []),
              "- Triton's onnxruntime backend must be present on the serving side; `workbench serve-check` tests the "
              "same model, interface and batching through a Python-backend twin.", ""]
    return "\n".join(lines)
