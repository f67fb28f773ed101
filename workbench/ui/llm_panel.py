"""The LLM serving-cost panel: tick arms, get one measured row each (TTFT, TPOT, tokens/s, roofline, $ per 1M
prompt / output tokens, perplexity change vs fp32). The arms, their timing and their quality live in the package
(:mod:`workbench.arms.llm`, measured by the one runner); this module only asks for rows, prices them and draws them.

Every arm generates exactly ``new_tokens`` greedy tokens after the same held-out prompts (batch 1), taking turns
prompt by prompt; every arm gets the same untimed first call. Perplexity is measured on each arm's own weights
through its own path (the compiled step for a fast-loop arm). Costs go through :func:`workbench.measure.cost.add_costs`,
each token kind priced from its own phase: prompt tokens/s = prompt tokens / TTFT, output tokens/s = 1 / TPOT. An
arm that cannot run here (no native bf16, no int4 kernel) is a row with ``available`` False and the ``reason``.

Example:
    >>> rows = run_arms(PydocLMTask(), ["fast-loop-fp32", "hf-int8-wo"], LlmRun.small())   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.arms.llm import BASELINE, LLM_ARMS

PANEL_ARMS = ("hf-generate-fp32", "hf-generate-bf16", "fast-loop-fp32", "hf-int8-wo", "hf-int4-wo",
              "fast-loop-int4-wo", "hf-kv-int8")
ARMS = {**{name: LLM_ARMS[name][1] for name in PANEL_ARMS},
        "prefix-cache": "shared-prefix KV reuse: TTFT and prompt cost with / without"}
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


def unavailable_row(name: str, reason: str) -> dict:
    return {"scenario": SCENARIO, "arm": name, "variant": name, "available": False, "reason": reason,
            "description": ARMS.get(name, name)}


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
    """Rows of the ``names`` arms on ``task`` (a causal-LM task), measured by
    :func:`workbench.arms.llm.measure_llm_arms` and priced on ``instance``; the HF fp32 baseline is always measured (every ratio is against it).

    Args:
        instance: a row of the price table (:func:`workbench.measure.cost.load_price_table`).
        api: a hosted-API row of the price table whose cached-input price the prefix-cache row compares with.
        table: a ResultsTable the rows are appended to as they are made.
    """
    from workbench.arms.llm import decode_context, llm_arms, measure_llm_arms
    from workbench.measure.cost import add_costs, get_price, load_api_prices
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
    gen_names = [n for n in PANEL_ARMS if n in names or n == BASELINE]
    rows = []
    if any(n in names for n in PANEL_ARMS):
        prompts = [p.reshape(1, -1) for p in task.prompts(run.n_prompts, run.prompt_len)]
        ctx = decode_context(base.model, run.prompt_len, run.new_tokens, compile=run.compile, quality="perplexity",
                             task=task, ppl_blocks=run.ppl_blocks, threads=run.threads, prompt_list=prompts)
        measured = measure_llm_arms(llm_arms(gen_names, run.compile), ctx, rounds=run.n_prompts)
        for row in measured:
            row.update(scenario=SCENARIO, variant=row["arm"], description=ARMS[row["arm"]], batch_size=1,
                       prompt_len=run.prompt_len, output_len=run.new_tokens, ttft_ms=row.get("ttft_ms_p50"),
                       tpot_ms=row.get("tpot_ms_p50"), token_agreement_vs_fp32=row.get("token_agreement_vs_hf"))
            if row["arm"] == BASELINE:
                row["ppl_note"] = "the baseline: every perplexity change is against it"
        rows = add_costs(measured, price, utilisation)
    if "prefix-cache" in names:
        api_price = load_api_prices()[api] if api else None
        try:
            rows.append(prefix_row(base.model, run, price.usd_per_hour, api_price))
        except Exception as exc:  # noqa: BLE001 - e.g. PrefixMismatch: the reused cache is wrong, say so
            rows.append(unavailable_row("prefix-cache", f"{type(exc).__name__}: {str(exc)[:300]}"))
    for row in rows:
        row.update(threads=run.threads, instance=price.instance, usd_per_hour=price.usd_per_hour)
        if table is not None:
            table.append(row)
    return rows


class LlmPanel:
    """Tick arms, pick an instance (and a hosted API for the cached-prompt price), Run: table and figures below.

    Drivable from code: set ``panel.ticks[name].value`` / ``panel.instance.value`` and call ``panel.run()``.
    """

    def __init__(self, task, run: LlmRun = LlmRun(), table=None,
                 ticked=("hf-generate-fp32", "fast-loop-fp32", "hf-int8-wo")):
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
