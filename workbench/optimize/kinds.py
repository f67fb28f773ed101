"""What differs between task kinds in the optimize search, behind one small adapter per kind.

The stages of ``optimize.search`` are the same for every kind; a kind says what one sweep point is (how it is timed
and which latency the SLO is read on), how a quality pair becomes the drop the one eligibility rule reads, what a unit
of cost is, and what the hand-off ships:

- ``ClassifierKind`` (text-classification): a point is a batch of B inputs (``measure.batching.sweep_batching``), the
  SLO is on the batch's latency at the percentile, cost is USD per 1M requests, the drop is in accuracy points, the
  hand-off is the Triton ONNX bundle.
- ``CausalLMKind`` (causal-lm): a point is one whole greedy request of B sequences (``new`` tokens after a
  ``prompt``-token prompt) through the arm's own call, timed as the screen times it (``measure.interleaved``); the
  SLO is on the per-output-token latency (ITL, every token interval of the point's requests) at the percentile, cost is
  USD per 1M output tokens (``measure.cost.usd_per_1m_tokens``) at the SLO point, the drop is the perplexity increase
  in % over the baseline (``arms.llm.ppl_increase``: paired bootstrap over the same blocks, each arm scored through
  its own path), and the hand-off is the vLLM engine bundle (``serving.engine.export``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

# A classifier's batch grid on a GPU goes on doubling up to this batch (a GPU's throughput keeps rising well past the
# CPU grid's 32)
GPU_GRID_TOP = 256


class ClassifierKind:
    name = "text-classification"
    cost_unit = "USD per 1M requests"
    drop_unit = "pts"                     # accuracy points
    drop_unit_long = "points of accuracy (paired 95% CI upper end)"
    throughput_unit = "requests/s"
    slo_latency = "per batch"             # what the SLO's latency is read on
    calls_per_turn = 3                    # interleaved turns: a call is a ~10 ms batch; three per turn amortise the switch

    def __init__(self, device: str = "cpu"):
        self.device = device

    @property
    def students_missing(self) -> str | None:
        """Why the distilled-student arms (``arms.distilled``: the CPU encoder arms on the student) are no
        candidates here, else None."""
        return None if self.device == "cpu" else (f"its arms are the CPU catalogue's in this version, not "
                                                  f"{self.device}'s")

    @staticmethod
    def student_arms(isa: dict, calibration) -> tuple[list, Any]:
        """(the student arms, the module whose ``training_seconds_estimate(task_kind)`` says how long their student
        trains): the student stacked with every CPU encoder arm."""
        import importlib

        distilled = importlib.import_module("workbench.arms.distilled")
        return [a for a in distilled.student_arms(isa, calibration=calibration and str(calibration))
                if not a.baseline], distilled

    def settings(self, st):
        # the screen times every arm at the top of the grid, where the sweep starts walking down: an arm compiled per
        # input shape (torch.compile, PT2E) compiles that shape at build, so its first sweep point (and the SLO point
        # of every contender that meets the SLO there) costs no further ~10 s compile; it also ranks the arms at the
        # batch whose throughput the cost is usually read at, not at a batch the sweep passes over. A GPU is fed
        # larger batches before its throughput levels off: its grid goes on to GPU_GRID_TOP.
        if self.device == "cuda":
            top = st.grid[-1]
            st = dataclasses.replace(st, grid=st.grid + tuple(top * 2 ** k for k in range(1, 8)
                                                                  if top * 2 ** k <= GPU_GRID_TOP))
        return dataclasses.replace(st, batch_size=st.grid[-1])

    def catalogue(self, isa: dict, calibration) -> list:
        """The CPU encoder arms for this ISA (the static int8 ones read ``calibration``), or the GPU encoder arms
        on cuda (``arms.gpu``)."""
        if self.device == "cuda":
            from workbench.arms.gpu import gpu_arms

            return gpu_arms()
        from workbench.arms.cpu import cpu_arms

        return cpu_arms(isa, calibration=calibration and str(calibration))

    @staticmethod
    def timed(built, batch: int):
        """The built arm as the screen and the confirmation time it: its call already runs the timing batch."""
        return built

    def calibration(self, task, st, folder):
        """The calibration set the static int8 arms read (None when the task has none, and on cuda: no GPU arm
        calibrates)."""
        from workbench.arms.cpu import calibration_set

        if self.device == "cuda":
            return None
        return calibration_set(task, st.calib_examples, folder / "calibration")[0]

    def context(self, task, st, threads, folder, log):
        from workbench.arms.cpu import cpu_context
        from workbench.arms.gpu import gpu_context

        if self.device == "cuda":
            ctx = gpu_context(task, st.batch_size, st.seq_len, st.eval_limit, str(folder / "arms"),
                              report_split="test", log=log)
        else:
            ctx = cpu_context(task, st.batch_size, st.seq_len, threads, st.eval_limit, str(folder / "arms"),
                              report_split="test", log=log)
        ctx.options["split"] = "validation"
        return ctx

    def point(self, s, name: str, batch: int) -> dict:
        from workbench.measure.batching import SweepConfig, sweep_batching

        st = s.settings
        config = SweepConfig(batch_sizes=(batch,), seq_lens=(st.seq_len,), latency_cap_ms=s.slo_ms,
                             point_seconds=st.point_seconds, percentile=s.percentile, retries=0,
                             threads=s.ctx.threads, timeout_s=max(10.0, 20 * s.slo_ms / 1e3))
        (row,) = sweep_batching(s.task, s.build(name).variant, config, progress=False)
        return row

    @staticmethod
    def at_batch(s, name: str, batch: int):
        """``name`` built, its call timing a batch of ``batch`` inputs at the run's sequence length (the inputs a
        sweep point times) instead of the screen's batch."""
        built = s.build(name)
        if batch == s.settings.batch_size or built.variant is None:
            return built
        inputs = s.task.example_inputs(batch, s.settings.seq_len)
        return dataclasses.replace(built, call=lambda: built.variant(inputs))

    @staticmethod
    def units_per_call(batch: int) -> int:
        """What one timed call at ``batch`` serves, in the cost's unit: ``batch`` requests."""
        return batch

    def cost(self, usd_per_hour: float, throughput: float) -> float:
        from workbench.measure.cost import usd_per_1m_requests

        return usd_per_1m_requests(usd_per_hour, throughput)

    def quality_figures(self, base_q, q) -> dict:
        from workbench.arms.rows import quality_drop

        return quality_drop(base_q, q)

    def lineage(self, name: str, steps) -> list:
        return ["torch-fp32"] + list(steps or [])

    def tokens_per_request(self, s, pick) -> tuple[float, float, float] | None:
        """(input tokens, output tokens, requests/s) of the pick, for build vs buy; None when unknown."""
        sweep = [r for r in s.store.rows("sweep") if r.get("arm") == pick["arm"] and r.get("tokens_per_s")
                 and r.get("throughput_per_s") and not r.get("failed")]
        if not sweep:
            return None
        tokens_in = sum(r["tokens_per_s"] / r["throughput_per_s"] for r in sweep) / len(sweep)
        return tokens_in, 1.0, pick["throughput_per_s"]   # a classifier's answer: one label, >= 1 API output token

    def bundle(self, s, dest):
        from workbench.optimize import handoff

        return handoff.bundle(s, dest)

    def load_check_missing(self) -> str | None:
        from workbench.optimize import handoff

        return handoff.triton_missing()

    load_check_s = 90                     # Triton's start-up and one open-loop point

    def load_check(self, s, bundle_dir):
        """(the decision's load check, its row): one open-loop point on the served Triton bundle."""
        from workbench.optimize import handoff

        return handoff.load_check(bundle_dir, s.slo_ms, s.percentile)


# Settings of the LM search: whole requests of ``new`` tokens after a ``prompt``-token prompt, batch B sequences.
LM_SMALL = dict(prompt=16, new=24, grid=(1, 2, 4), point_seconds=1.0, screen_seconds=0.4, eval_limit=16)
LM_FULL = dict(prompt=64, new=64, grid=(1, 2, 4, 8, 16), point_seconds=3.0, screen_seconds=1.5, eval_limit=None)


class CausalLMKind:
    name = "causal-lm"
    cost_unit = "USD per 1M output tokens"
    drop_unit = "% ppl"                   # perplexity increase in % over the baseline
    drop_unit_long = "% perplexity increase over the baseline (paired 95% CI upper end)"
    throughput_unit = "output tokens/s"
    slo_latency = "per output token (ITL)"
    # a call is a whole request (20-150 ms): one per turn interleaves as finely as the arms allow, and a round of one
    # call each overshoots a time budget by less (three per turn ran the LM screen's first round 2x over its budget)
    calls_per_turn = 1

    def __init__(self, small: bool, device: str = "cpu"):
        self.small = small
        self.device = device
        self.shape = LM_SMALL if small else LM_FULL

    @property
    def students_missing(self) -> str | None:
        """Why the LM student arms (``arms.distilled_llm``: the student through the LLM decode arms) are no
        candidates here, else None: the student trains on CPU, so a GPU run leaves it out."""
        return None if self.device == "cpu" else f"the LM student trains on CPU in this version, not {self.device}"

    def student_arms(self, isa: dict, calibration) -> tuple[list, Any]:
        """(the student through every LLM decode arm of this kind's catalogue, the module estimating its training)."""
        import importlib

        distilled_llm = importlib.import_module("workbench.arms.distilled_llm")
        return distilled_llm.lm_student_arms(compile=not self.small, device=self.device), distilled_llm

    def settings(self, st):
        # the screen times whole requests at the top of the grid, where the sweep starts walking down and where the
        # cost at the SLO is read unless the SLO is tight: at batch 1 decode is bound by weight traffic (int4 weights
        # lead), higher up by compute (fp32 and AMX bf16 GEMMs batch better). A batch-1 screen once culled the arm an
        # exhaustive run found cheapest (25% regret); a batch-4 screen culled fast-loop-bf16 (1.47x vs fp32 1.92x at
        # batch 4), the exhaustive run's cheapest at batch 16 on an AMX Xeon (88% regret)
        sh = self.shape
        return dataclasses.replace(st, batch_size=sh["grid"][-1], seq_len=sh["prompt"],
                                   grid=sh["grid"],
                                   point_seconds=sh["point_seconds"], screen_seconds=sh["screen_seconds"],
                                   eval_limit=sh["eval_limit"], warmup=1)

    def context(self, task, st, threads, folder, log):
        from workbench.arms.llm import decode_context

        # torch.compile of a fast loop per batch size takes minutes on a loaded 2-core box: small mode times the
        # same arms eagerly (the decision says so through the arms' notes)
        ctx = decode_context(task.baseline(self.device).model, prompt=self.shape["prompt"], new=self.shape["new"],
                             batches=st.grid, compile=not self.small, quality="perplexity", task=task,
                             threads=threads, out=str(folder / "arms" / "onnx"), ppl_blocks=st.eval_limit, log=log,
                             # compiled at build: the screen's batch only; an arm the screen keeps compiles its sweep
                             # batches in their warm-up calls (a fast loop's graph per batch size took ~10 s each here,
                             # most of a full-size run's builds when every arm compiled the whole grid)
                             compile_batches=(st.batch_size,), device=self.device)
        # chosen on validation blocks, reported on test blocks (the confirm stage's report_quality)
        ctx.options["quality_ids"] = task.token_blocks("validation")[:st.eval_limit]
        ctx.options["report_ids"] = task.token_blocks("test")[:st.eval_limit]
        ctx.options["split"], ctx.options["report_split"] = "validation", "test"
        return ctx

    @staticmethod
    def calibration(task, st, folder):
        """None: no LLM arm calibrates."""
        return None

    @staticmethod
    def timed(built, batch: int):
        """The built arm as the screen and the confirmation time it: whole requests of ``batch`` sequences through
        the arm's own call (its context's calls are batch 1). An arm that runs at most ``meta["max_batch"]``
        sequences (llama.cpp: 1) serves the same ``batch`` sequences as requests of that many one after another, so
        its time per call is the time to serve the same tokens, as its sweep at batch 1 would price it."""
        at = getattr(built.call, "at_batch", None)
        most = built.meta.get("max_batch")
        if most and batch > most:
            one = at(most) if at is not None else built.call
            turns = -(-batch // most)

            def serially():
                for _ in range(turns):
                    one()
            return dataclasses.replace(built, call=serially)
        return built if at is None or batch == 1 else dataclasses.replace(built, call=at(batch))

    def catalogue(self, isa: dict, calibration) -> list:
        """The LLM decode arms on this kind's device (each says why it does not run there: llama.cpp and ORT are
        CPU arms here); small mode times the fast loops eagerly: no compiled arms to wait minutes for."""
        from workbench.arms.llm import llm_arms

        return list(llm_arms(compile=not self.small, device=self.device))

    @staticmethod
    def with_report_quality(built, ctx):
        """``built.report_quality``: the arm's own quality path on the test blocks instead of the validation ones."""
        if built.quality is None or built.report_quality is not None:
            return built
        quality = built.quality

        def report():
            chosen = ctx.options["quality_ids"]
            ctx.options["quality_ids"] = ctx.options["report_ids"]
            try:
                return quality()
            finally:
                ctx.options["quality_ids"] = chosen
        built.report_quality = report
        return built

    def point(self, s, name: str, batch: int) -> dict:
        """One whole greedy request of ``batch`` sequences, repeated for ``point_seconds``: request metrics of those
        calls; ``latency_<p>_ms`` are the ITL percentiles (per output token), ``n_calls`` the token intervals behind
        them, ``throughput_per_s`` output tokens/s (B x new / mean request time)."""
        from workbench.measure.interleaved import time_interleaved
        from workbench.measure.request_metrics import request_metrics

        st, new = s.settings, self.shape["new"]
        built = s.build(name)
        at = getattr(built.call, "at_batch", None)
        if at is None:
            raise RuntimeError(f"arm {name} cannot time another batch size (no at_batch on its call)")
        results = []
        timing = time_interleaved({name: at(batch)}, rounds=3, seconds=st.point_seconds, threads=s.ctx.threads,
                                  device=s.device,
                                  calls_per_turn=1, warmup=1, record=lambda _n, res: results.append(res))
        t = timing[name]
        m = request_metrics([req for r in results for req in r.requests()])
        tokens_s = batch * new / (m["e2e_ms_mean"] / 1e3) if m.get("e2e_ms_mean") else None
        return {"scenario": "generation-batching", "batch_size": batch, "seq_len": self.shape["prompt"],
                "output_len": new, "variant_id": name, "n_calls": m["itl_samples"], "n_requests": t.n_calls, "stable": t.stable,
                "latency_p50_ms": _r(m.get("itl_ms_p50")), "latency_p99_ms": _r(m.get("itl_ms_p99")),
                "slo_latency": "itl", "tpot_ms_p50": m.get("tpot_ms_p50"), "tpot_ms_p99": m.get("tpot_ms_p99"),
                "ttft_ms_p50": m.get("ttft_ms_p50"), "e2e_ms_mean": m.get("e2e_ms_mean"),
                "throughput_per_s": round(tokens_s, 3) if tokens_s else None, "throughput_unit": "output tokens/s",
                "requests_per_s": round(tokens_s / new, 4) if tokens_s else None}

    def at_batch(self, s, name: str, batch: int):
        """``name`` built, its call one whole request of ``batch`` sequences (:meth:`timed`)."""
        return self.timed(s.build(name), batch)

    def units_per_call(self, batch: int) -> int:
        """What one timed call at ``batch`` serves, in the cost's unit: a whole request of ``batch`` sequences makes
        ``batch x new`` output tokens."""
        return batch * self.shape["new"]

    def cost(self, usd_per_hour: float, throughput: float) -> float:
        from workbench.measure.cost import usd_per_1m_tokens

        return usd_per_1m_tokens(usd_per_hour, throughput)

    def quality_figures(self, base_q, q) -> dict:
        """Value, CI and n of the perplexity; against a baseline, the perplexity increase (%) as the drop columns the
        one eligibility rule reads (``drop_pts`` / ``drop_ci_pts`` hold % perplexity increase here)."""
        from workbench.arms.llm import ppl_increase
        from workbench.arms.rows import quality_drop

        out = quality_drop(None, q)
        if base_q is None or base_q is q:
            return out
        inc = ppl_increase(base_q, q)
        return {**out, **inc, "drop_pts": inc["ppl_increase_pct"], "drop_ci_pts": inc["ppl_increase_ci_pct"],
                "drop_unit": self.drop_unit}

    def lineage(self, name: str, steps) -> list:
        from workbench.arms.llm import LLM_ARMS

        return ["hf-fp32"] + ([] if name == "hf-generate-fp32" else [LLM_ARMS[name][1]])

    def tokens_per_request(self, s, pick) -> tuple[float, float, float] | None:
        if not pick.get("throughput_per_s"):
            return None
        new = self.shape["new"]
        return float(self.shape["prompt"]), float(new), pick["throughput_per_s"] / new

    def bundle(self, s, dest):
        from workbench.optimize import engine_handoff

        return engine_handoff.bundle(s, dest)

    def load_check_missing(self) -> str | None:
        from workbench.optimize import engine_handoff

        return engine_handoff.load_check_missing()

    @property
    def load_check_s(self) -> float:
        from workbench.optimize.engine_handoff import LOAD_CHECK_S

        return LOAD_CHECK_S

    def load_check(self, s, bundle_dir):
        """(the decision's load check, its row): one open-loop point on vLLM serving the engine bundle, in the
        search's request shape, judged on its ITL SLO."""
        from workbench.optimize import engine_handoff

        return engine_handoff.load_check(bundle_dir, s.slo_ms, s.percentile, self.shape["prompt"], self.shape["new"])


def _r(x):
    return None if x is None else round(x, 3)


# task kind -> its adapter given small mode and the device (the classifier's shapes shrink through
# Settings.for_mode alone)
KINDS = {ClassifierKind.name: lambda small, device: ClassifierKind(device),
         CausalLMKind.name: lambda small, device: CausalLMKind(small, device)}
DEVICES = ("cpu", "cuda")


def kind_for(task_kind: str, small: bool, device: str = "cpu"):
    """The adapter of ``task_kind`` on ``device`` (small mode: its shrunken shapes); a kind without one is
    refused."""
    if task_kind not in KINDS:
        raise ValueError(f"optimize has no arm catalogue for task kind {task_kind!r} yet: use "
                         f"{' or '.join(KINDS)}")
    if device not in DEVICES:
        raise ValueError(f"device {device!r}: use one of {DEVICES}")
    return KINDS[task_kind](small, device)


__all__ = ["ClassifierKind", "CausalLMKind", "kind_for", "KINDS", "DEVICES", "LM_SMALL", "LM_FULL", "GPU_GRID_TOP"]
