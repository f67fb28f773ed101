"""The ISA panel: what this CPU has, which CPU arms apply here and why the others do not, and which arm won.

It reads :func:`workbench.runtime.cpu.isa_summary` / :func:`~workbench.measure.isa.applicable_arms`, builds the arms
that apply with the registered steps, times them side by side (interleaved, one shape), checks each one's accuracy
drop against torch fp32 on the same validation examples (paired bootstrap), and picks the fastest arm whose drop CI
ends within the tolerance. The winner's kernel profile says what ran (share of time in int8 / bf16 kernels).

Example:
    >>> panel = IsaPanel(task, skip=("compile",)); panel.run(); panel        # doctest: +SKIP
"""
from __future__ import annotations

import html

import numpy as np

ORT_NOTE = ("ONNX Runtime's CPU EP (MLAS) picks its int8 GEMM kernels (AVX2 / AVX-512 VNNI / AMX) from CPUID at load "
            "time: no session option selects them; the int8 choices are the format (QDQ static vs dynamic "
            "MatMulInteger) and 7- vs 8-bit weights (reduce_range, for CPUs without VNNI)")


class IsaPanel:
    """The ISA panel (an HTML table in a notebook; ``run()`` measures the applicable arms).

    Args:
        task: the task (timing inputs, calibration split, validation split).
        calib_examples: calibration examples for the static int8 arms (0: those arms are skipped, with the reason).
        skip: arm kinds not to run ("int8", "bf16", "compile", "openvino"), e.g. ("compile",) for a quick pass.
        batch_size, seq_len: the timing shape; eval_limit: validation examples; seconds: timing budget per arm;
        threads: intra-op threads for every arm; tolerance_pts: largest acceptable drop (upper end of its paired CI).
    """

    def __init__(self, task, calib_examples: int = 32, skip: tuple = (), batch_size: int = 8, seq_len: int = 128,
                 eval_limit: int | None = 64, seconds: float = 1.0, threads: int = 2, tolerance_pts: float = 1.0):
        from workbench.measure.isa import applicable_arms
        from workbench.runtime.cpu import cpu_model_and_flags, isa_summary

        self.task, self.skip, self.threads = task, tuple(skip), threads
        self.shape, self.eval_limit, self.seconds, self.tolerance_pts = (batch_size, seq_len), eval_limit, seconds, tolerance_pts
        self.cpu, flags = cpu_model_and_flags()
        self.isa = isa_summary(flags)
        self.calibration = None
        if calib_examples:
            from workbench.cli.recommend import calibration_set
            from workbench.util.files import artifacts_root

            self.calibration, _why = calibration_set(task, calib_examples, artifacts_root() / "calibration-sets")
        self.arms = applicable_arms(self.isa, calibration=self.calibration and str(self.calibration))
        self.rows: list[dict] = []
        self.best: dict | None = None
        self.why = ""

    def run(self) -> list[dict]:
        """Build, time (interleaved) and check every arm that applies and is not skipped; pick the winner."""
        import dataclasses

        from workbench.cli.recommend import build_arm, pick
        from workbench.measure.interleaved import time_interleaved
        from workbench.runtime import with_threads

        example = self.task.example_inputs(*self.shape)
        base = with_threads(self.task.baseline("cpu"), self.threads)
        base = dataclasses.replace(base, meta={**base.meta, "example_inputs": example})
        rows, variants, cache = [], {}, {}
        for arm in self.arms:
            row = {"arm": arm.name, "kind": arm.kind, "reason": arm.reason, "baseline": arm.applies and not arm.steps}
            if not arm.applies or arm.kind in self.skip:
                reason = arm.reason if not arm.applies else f"skipped in this run ({arm.kind}); {arm.reason}"
                rows.append({**row, "status": "not available here" if not arm.applies else "skipped", "reason": reason})
                continue
            try:
                variants[arm.name] = build_arm(base, arm, cache)
                rows.append({**row, "status": "measured"})
            except Exception as exc:  # noqa: BLE001 - a failing arm is a row with the reason, the others go on
                rows.append({**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        timing = time_interleaved({n: (lambda v=v: v(example)) for n, v in variants.items()},
                                  seconds=self.seconds / 5, rounds=5, threads=self.threads, warmup=2)
        self._fill(rows, variants, timing)
        self.rows, self.best = rows, pick(rows, self.tolerance_pts)
        self.why = self._why(variants, example)
        return rows

    def _fill(self, rows, variants, timing) -> None:
        from workbench.util.stats import describe_drop, paired_quality_drop

        base_q = self.task.evaluate(variants["torch-fp32"], split="validation", limit=self.eval_limit)
        base_p50 = timing["torch-fp32"].p50_ms
        for row in (r for r in rows if r["status"] == "measured"):
            t, v = timing[row["arm"]], variants[row["arm"]]
            row.update(p50_ms=round(t.p50_ms, 3), speedup=round(base_p50 / t.p50_ms, 3), stable=t.stable,
                       compile_seconds=v.meta.get("compile_seconds"))
            if row["baseline"]:
                continue
            q = self.task.evaluate(v, split="validation", limit=self.eval_limit)
            drop, low, high = paired_quality_drop(np.asarray(base_q.per_example, float), np.asarray(q.per_example, float),
                                                  base_q.higher_is_better, 100)
            row.update(drop_pts=round(drop, 2), drop_ci_pts=[round(low, 2), round(high, 2)],
                       drop=describe_drop(drop, low, high, scale=1))

    def _why(self, variants, example) -> str:
        from workbench.measure.isa import precision_time_shares, won_because
        from workbench.runtime.profile import kernel_profile

        if self.best is None or self.best["baseline"]:
            return f"torch-fp32: no arm is faster with its drop CI within {self.tolerance_pts:g} pts"
        shares = precision_time_shares(kernel_profile(variants[self.best["arm"]], example, runs=2))
        fig = {"speedup_b8": self.best["speedup"], "speedup_b1": "-"}
        skipped = {r["arm"]: r["reason"] for r in self.rows if r["status"] != "measured"}
        text = won_because(self.best["arm"], fig, {"cpu": self.cpu, **self.isa}, shares, skipped)
        return text.replace(" / -x (batch 1)", "").replace("(batch 8)", f"(batch {self.shape[0]} x {self.shape[1]})")

    def to_html(self) -> str:
        yes = lambda b: "✓" if b else "✗"  # noqa: E731
        isa = "".join(f"<td>{k}: {yes(v)}</td>" for k, v in self.isa.items())
        rows = self.rows or [{"arm": a.name, "status": "applies" if a.applies else "not available here",
                              "reason": a.reason} for a in self.arms]
        body = "".join(
            f"<tr><td>{r['arm']}</td><td>{r['status']}</td><td>{_num(r.get('p50_ms'))}</td>"
            f"<td>{_num(r.get('speedup'))}</td><td>{html.escape(str(r.get('drop', '')))}"
            f"{' ' + str(r['drop_ci_pts']) if r.get('drop_ci_pts') else ''}</td><td>{html.escape(r['reason'])}</td></tr>"
            for r in rows)
        won = f"<p><b>won:</b> {html.escape(self.why)}</p>" if self.why else "<p>run() to measure the arms that apply</p>"
        return (f"<div><b>CPU</b>: {html.escape(self.cpu)}<table><tr>{isa}</tr></table>"
                f"<table><tr><th>arm</th><th>status</th><th>p50 ms</th><th>speed-up</th><th>drop (pts, paired CI)</th>"
                f"<th>why</th></tr>{body}</table>{won}<p><i>{ORT_NOTE}</i></p></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_text(self) -> str:
        """The same content as plain lines (for logs and tests)."""
        lines = [f"CPU: {self.cpu} | " + " ".join(f"{k} {'yes' if v else 'no'}" for k, v in self.isa.items())]
        for r in self.rows or [{"arm": a.name, "status": "applies" if a.applies else "not available here",
                                "reason": a.reason} for a in self.arms]:
            figures = f" p50 {r['p50_ms']} ms {r['speedup']}x drop {r.get('drop', 'baseline')}" if "p50_ms" in r else ""
            lines.append(f"  {r['arm']:24s} {r['status']}{figures} ({r['reason']})")
        return "\n".join(lines + ([f"won: {self.why}"] if self.why else []))


def _num(value) -> str:
    return "" if value is None else f"{value:.3g}"


__all__ = ["IsaPanel", "ORT_NOTE"]
