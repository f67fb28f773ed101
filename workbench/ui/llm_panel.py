"""The LLM serving-cost notebook's logic: ticked arms -> one measured row each (TTFT, TPOT, tokens/s, roofline,
$ per 1M prompt / output tokens, perplexity change vs fp32), testable without widgets; :class:`LlmPanel` wires it
to ipywidgets.

Every arm generates exactly ``new_tokens`` greedy tokens after the same held-out prompts (batch 1), taking turns
prompt by prompt so load drift hits every arm alike; each arm's first call (compile, allocation) is untimed and
reported apart. Costs go through :func:`workbench.measure.cost.add_costs`, each token kind priced from its own
phase: prompt tokens/s = prompt tokens / TTFT (the prefill), output tokens/s = 1 / TPOT (the decode steps). An arm
that cannot run here (no native bf16, no int4 kernel) is a row with ``available`` False and the ``reason``.

Example:
    >>> rows = run_arms(PydocLMTask(), ["fp32", "fast-loop", "int8-wo"], LlmRun.small())     # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

ARMS = {
    "fp32": "HF generate, fp32 weights (the baseline)",
    "bf16": "HF generate, bf16 weights (where the CPU has AMX / AVX512-BF16)",
    "fast-loop": "fast loop: static KV cache + torch.compile'd decode step, fp32",
    "int8-wo": "weight-only int8, HF generate",
    "int4-wo": "weight-only int4 (groups of 128), HF generate",
    "fast-loop-int4-wo": "weight-only int4 (groups of 128) under the fast loop",
    "kv-int8": "int8 KV cache, fp32 weights",
    "prefix-cache": "shared-prefix KV reuse: TTFT and prompt cost with / without",
}
SCENARIO = "llm-serving"


@dataclass(frozen=True)
class LlmRun:
    """How much each arm runs: prompts x (prompt_len + new_tokens), perplexity blocks, threads, prefix trial."""

    prompt_len: int = 128
    new_tokens: int = 64
    n_prompts: int = 4
    ppl_blocks: int | None = 32
    threads: int = 2
    compile: bool = True
    prefix_len: int = 512
    prefix_requests: int = 6

    def __post_init__(self):
        if min(self.prompt_len, self.n_prompts, self.prefix_len, self.prefix_requests) < 1 or self.new_tokens < 2:
            raise ValueError(f"sizes must be >= 1 and new_tokens >= 2 (TPOT needs a token after the first): {self}")

    @classmethod
    def small(cls) -> LlmRun:
        """CI / quick look: seconds per arm on 2 cores (the fast loop runs eager: inductor takes minutes here)."""
        return cls(prompt_len=16, new_tokens=8, n_prompts=2, ppl_blocks=4, compile=False, prefix_len=64,
                   prefix_requests=3)


@dataclass
class Arm:
    """One way of generating: ``generate(ids [1, T], new) -> DecodeResult``, the variant perplexity is measured on
    (None: same weights and maths as fp32), the model whose bytes a decode step reads, and KV bytes per position."""

    name: str
    generate: object
    model: torch.nn.Module
    kv_bytes_per_token: float
    variant: object = None
    notes: str = ""
    extra: dict = field(default_factory=dict)


def unavailable_row(name: str, reason: str) -> dict:
    return {"scenario": SCENARIO, "arm": name, "variant": name, "available": False, "reason": reason,
            "description": ARMS.get(name, name)}


@torch.inference_mode()
def cache_generate(model, ids: torch.Tensor, new_tokens: int, bits: int = 8):
    """Greedy decoding through an int ``bits`` KV cache with an emission time per token (the KV-cache arm)."""
    from workbench.decoding.fast_loop import DecodeResult
    from workbench.decoding.lm import clock
    from workbench.steps.kv_cache import quantized_cache

    cache, device = quantized_cache(bits), ids.device
    start = clock(device)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    tokens, times = [ids], []
    for i in range(new_tokens):
        token = out.logits[:, -1:].argmax(-1)                                   # [B, 1]
        tokens.append(token)
        times.append(clock(device))
        if i < new_tokens - 1:
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
    return DecodeResult(torch.cat(tokens, 1), start, times, [1] * new_tokens, notes=f"int{bits} KV cache")


def _kv_bytes(model, element_bytes: float | None = None) -> float:
    from workbench.runtime.kv_budget import kv_bytes_per_token

    return kv_bytes_per_token(model.config, element_bytes or next(model.parameters()).element_size())


def _hf_arm(name, variant, notes) -> Arm:
    from workbench.decoding.fast_loop import hf_generate

    return Arm(name, lambda ids, n: hf_generate(variant.model, ids, n), variant.model, _kv_bytes(variant.model),
               variant, notes)


def _fast_loop_arm(name, source, run: LlmRun, variant) -> Arm:
    """The fast loop over ``source``'s model; ``variant`` is what perplexity is measured on (None: fp32's own)."""
    from workbench.decoding.fast_loop import FastDecoder

    dec = FastDecoder(source.model, max_batch_size=1, max_cache_len=run.prompt_len + run.new_tokens,
                      compile=run.compile)
    kernel = f" on {source.meta['kernel']}" if variant is not None else ""
    return Arm(name, dec.generate, source.model, _kv_bytes(source.model), variant, dec.label + kernel,
               {"decoder": dec, "fast_loop_reason": dec.reason})


def build_arm(name: str, base, run: LlmRun) -> Arm:
    """The arm ``name`` on the fp32 ``base`` variant; raises (with the reason) when it cannot run here."""
    from workbench.core import apply

    if name == "fp32":
        return _hf_arm(name, base, "HF generate (dynamic cache), eager")
    if name == "bf16":
        from workbench.runtime.cpu import isa_summary, native_bf16
        from workbench.steps.cpu_precision import CpuPrecisionConfig

        native, why = native_bf16(isa_summary())
        if not native:   # emulated bf16 is slower than fp32 on such a CPU: not a serving choice
            raise RuntimeError(why)
        return _hf_arm(name, apply(base, CpuPrecisionConfig()), why)
    if name == "fast-loop":
        return _fast_loop_arm(name, base, run, variant=None)
    if name in ("int8-wo", "int4-wo", "fast-loop-int4-wo"):
        from workbench.steps.weight_only import WeightOnlyConfig

        config = WeightOnlyConfig.int8() if name == "int8-wo" else WeightOnlyConfig.int4()
        variant = apply(base, config)
        if name.startswith("fast-loop"):   # the same int4 weights under the compiled static-cache loop
            return _fast_loop_arm(name, variant, run, variant=variant)
        return _hf_arm(name, variant, f"HF generate on {variant.meta['kernel']}")
    if name == "kv-int8":
        from workbench.steps.kv_cache import KvCacheQuantConfig

        variant = apply(base, KvCacheQuantConfig(bits=8))
        return Arm(name, lambda ids, n: cache_generate(variant.model, ids, n, 8), variant.model,
                   variant.meta["kv_bytes_per_token"], variant, "int8 KV cache (per token and head scales)")
    raise ValueError(f"unknown arm {name!r}: pick from {list(ARMS)}")


def measure_arms(arms: list[Arm], prompts: list, new_tokens: int, threads: int, progress: bool = True) -> dict:
    """{arm name: [DecodeResult per prompt]}, arms taking turns prompt by prompt; first calls untimed."""
    from tqdm.auto import tqdm

    from workbench.runtime.threads import torch_threads

    out = {a.name: [] for a in arms}
    with torch_threads(threads):
        for arm in arms:   # warm-up: compile, allocation, kernel choice (reported apart, never timed)
            start = time.perf_counter()
            arm.generate(prompts[0], new_tokens)
            arm.extra["first_call_s"] = round(time.perf_counter() - start, 3)
        bar = tqdm(total=len(prompts) * len(arms), desc="generating", disable=not progress)
        for ids in prompts:
            for arm in arms:
                out[arm.name].append(arm.generate(ids, new_tokens))
                bar.update()
        bar.close()
    return out


def arm_row(arm: Arm, results: list, prompt_len: int, reference: list | None, peak_gb_s: float | None) -> dict:
    """One row from an arm's results: request metrics, phase token rates, agreement with fp32, roofline."""
    from workbench.runtime.kv_budget import decode_weight_bytes
    from workbench.measure.request_metrics import request_metrics
    from workbench.measure.roofline import roofline_columns

    m = request_metrics([r for res in results for r in res.requests()])
    new = m["output_tokens"] // m["n_requests"]
    # phase rates from means (tokens over time, what a bill adds up); the figures show p50s
    ttft_s, tpot_s = m["ttft_ms_mean"] / 1e3, (m["tpot_ms_mean"] or 0) / 1e3   # 0: one emission, no decode pace
    row = {"scenario": SCENARIO, "arm": arm.name, "variant": arm.name, "available": True,
           "description": ARMS.get(arm.name, arm.name), "notes": arm.notes, "batch_size": 1,
           "prompt_len": prompt_len, "output_len": new, **m,
           "ttft_ms": m["ttft_ms_p50"], "tpot_ms": m["tpot_ms_p50"],
           "prompt_tokens_per_s": round(prompt_len / ttft_s, 2),
           "output_tokens_per_s": round(1 / tpot_s, 2) if tpot_s > 0 else None,
           "throughput_per_s": round(1e3 / m["e2e_ms_mean"], 4),   # requests/s, one after another
           "first_call_s": arm.extra.get("first_call_s")}
    if "decoder" in arm.extra:
        row["compile_seconds"] = round(arm.extra["decoder"].compile_seconds, 2)
        row["reason"] = arm.extra["decoder"].reason
    if reference is not None:   # greedy tokens equal to fp32's (exact arms: 1.0)
        same = [float((a.tokens[:, -new:] == b.tokens[:, -new:]).float().mean()) for a, b in zip(results, reference)]
        row["token_agreement_vs_fp32"] = round(sum(same) / len(same), 4)
    if peak_gb_s and row["output_tokens_per_s"]:   # bytes one decode step reads: weights + KV at the mean context
        step_bytes = decode_weight_bytes(arm.model) + arm.kv_bytes_per_token * (prompt_len + new / 2)
        row.update(roofline_columns(step_bytes, row["output_tokens_per_s"], peak_gb_s))
    return row


def perplexity_columns(task, base, arm: Arm, blocks: int | None) -> dict:
    """Perplexity change vs fp32 on the same blocks (paired CI); arms with fp32's own weights and maths say so."""
    from workbench.measure.quality import paired_perplexity

    if arm.variant is None or arm.variant is base:
        return {"ppl_note": "same fp32 weights and maths: not re-measured"}
    return paired_perplexity(task, base, arm.variant, limit=blocks)


def prefix_row(model, run: LlmRun, usd_per_hour: float, api=None) -> dict:
    """The prefix-cache trial as a row: TTFT with / without the reused prefix and $ per 1M prompt tokens."""
    from workbench.measure.cost import prefix_cache_saving
    from workbench.measure.prefix_cache import PrefixTrial, prefix_cache_trial
    from workbench.tasks.hf_loading import context_length

    suffix = PrefixTrial().suffix_len
    prefix = min(run.prefix_len, (context_length(model) or 10**9) - suffix)   # the demo LM holds 256 positions
    trial = prefix_cache_trial(model, PrefixTrial(prefix_len=prefix, suffix_len=suffix, n_requests=run.prefix_requests))
    saving = prefix_cache_saving(usd_per_hour, trial, api=api)
    note = f"; prefix shortened from {run.prefix_len} to fit the model's context" if prefix < run.prefix_len else ""
    return {**trial, **saving, "notes": trial["notes"] + note, "scenario": SCENARIO, "arm": "prefix-cache", "variant": "prefix-cache",
            "available": True, "description": ARMS["prefix-cache"],
            "ttft_ms": trial["ttft_ms_reused"], "usd_per_1m_prompt_tokens": saving["usd_per_1m_prompt_tokens_uncached"],
            "prompt_len": trial["prefix_len"] + trial["suffix_len"]}


def run_arms(task, names, run: LlmRun = LlmRun(), instance: str = "c7i.large", api: str | None = None,
             utilisation: float = 1.0, table=None, progress: bool = True) -> list[dict]:
    """Build, measure and cost the ``names`` arms on ``task`` (a causal-LM task); returns one row per arm.

    Args:
        instance: a row of the price table (:func:`workbench.measure.cost.load_price_table`).
        api: a hosted-API row of the price table whose cached-input price the prefix-cache row compares with.
        table: a ResultsTable the rows are appended to as they are made.
    """
    from workbench.measure.cost import add_costs, get_price, load_api_prices
    from workbench.measure.roofline import run_copy_bandwidth
    from workbench.tasks.hf_loading import context_length

    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        raise ValueError(f"arms {unknown or names} unknown or none ticked: pick from {list(ARMS)}")
    price = get_price(instance)
    base = task.baseline()
    context = context_length(base.model)
    if context and run.prompt_len + run.new_tokens > context:
        raise ValueError(f"prompt_len {run.prompt_len} + new_tokens {run.new_tokens} exceed the model's context of "
                         f"{context} tokens: lower them")
    gen_names = [n for n in ARMS if n in names and n != "prefix-cache"]
    if gen_names and "fp32" not in gen_names:   # the reference every ratio and agreement is against
        gen_names.insert(0, "fp32")
    arms, rows = [], []
    for name in gen_names:
        try:
            arms.append(build_arm(name, base, run))
        except Exception as exc:  # noqa: BLE001 - a missing kernel / ISA / library: a row with the reason
            rows.append(unavailable_row(name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
    results = measure_arms(arms, task.prompts(run.n_prompts, run.prompt_len), run.new_tokens, run.threads,
                           progress) if arms else {}
    peak = run_copy_bandwidth("cpu", run.threads) if arms else None
    for arm in arms:
        row = arm_row(arm, results[arm.name], run.prompt_len, results.get("fp32"), peak)
        rows.append({**row, **perplexity_columns(task, base, arm, run.ppl_blocks)})
    rows = add_costs(rows, price, utilisation)
    if "prefix-cache" in names:
        api_price = load_api_prices()[api] if api else None
        try:
            rows.append(prefix_row(base.model, run, price.usd_per_hour, api_price))
        except Exception as exc:  # noqa: BLE001 - e.g. PrefixMismatch: the reused cache is wrong, say so
            rows.append(unavailable_row("prefix-cache", f"{type(exc).__name__}: {str(exc)[:300]}"))
    order = {n: i for i, n in enumerate(ARMS)}
    rows.sort(key=lambda r: order[r["arm"]])
    for row in rows:
        row.update(threads=run.threads, instance=price.instance, usd_per_hour=price.usd_per_hour)
        if table is not None:
            table.append(row)
    return rows


class LlmPanel:
    """Tick arms, pick an instance (and a hosted API for the cached-prompt price), Run: table and figures below.

    Drivable from code: set ``panel.ticks[name].value`` / ``panel.instance.value`` and call ``panel.run()``.
    """

    def __init__(self, task, run: LlmRun = LlmRun(), table=None, ticked=("fp32", "fast-loop", "int8-wo")):
        import ipywidgets as w

        from workbench.measure.cost import load_api_prices, load_price_table

        self.task, self.settings, self.table, self.rows = task, run, table, []
        self.ticks = {n: w.Checkbox(value=n in ticked, description=n, indent=False, tooltip=d)
                      for n, d in ARMS.items()}
        self.instance = w.Dropdown(options=sorted(load_price_table()), value="c7i.large", description="instance")
        self.api = w.Dropdown(options=[None, *sorted(load_api_prices())], value="openai/gpt-4o-mini",
                              description="hosted API")
        self.run_button = w.Button(description="Run arms", button_style="primary")
        self.output = w.Output()
        self.run_button.on_click(lambda _b: self.run())
        self.widget = w.VBox([w.HBox(list(self.ticks.values())), w.HBox([self.instance, self.api, self.run_button]),
                              self.output])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def run(self) -> list[dict]:
        """Measure the ticked arms and show the rows, TTFT vs TPOT and the cost bars; returns the rows."""
        from IPython.display import display

        from workbench.ui.plots_llm import cost_figure, summary_table, ttft_tpot_figure

        names = [n for n, box in self.ticks.items() if box.value]
        self.rows = run_arms(self.task, names, self.settings, self.instance.value, self.api.value, table=self.table)
        self.output.clear_output(wait=True)
        with self.output:
            print(summary_table(self.rows))
            display(ttft_tpot_figure(self.rows), cost_figure(self.rows))
        return self.rows
