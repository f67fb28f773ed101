"""The ISA panel: what this CPU has, which CPU arms apply here and why the others do not, and which arm won.

It only calls the package and reads rows: the arms are :func:`workbench.arms.cpu.cpu_arms` for this ISA, measured by
:func:`workbench.arms.runner.compare` (timed side by side, accuracy drop against torch fp32 on the same validation
examples, the fastest arm whose drop CI ends within the tolerance, confirmed on a fresh run), and the winner's kernel
profile says what ran (:func:`workbench.arms.cpu.explain_winner`).

Example:
    >>> panel = IsaPanel(task, skip=("compile",)); panel.run(); panel        # doctest: +SKIP
"""
from __future__ import annotations

import html

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
        from workbench.arms.cpu import calibration_set, cpu_arms
        from workbench.runtime.cpu import cpu_model_and_flags
        from workbench.runtime.cpu import isa_summary
        from workbench.util.files import artifacts_root

        self.task, self.skip, self.threads = task, tuple(skip), threads
        self.shape, self.eval_limit, self.seconds, self.tolerance_pts = (batch_size, seq_len), eval_limit, seconds, tolerance_pts
        self.cpu, flags = cpu_model_and_flags()
        self.isa = isa_summary(flags)
        self.calibration = None
        if calib_examples:
            self.calibration, _why = calibration_set(task, calib_examples, artifacts_root() / "calibration-sets")
        self.arms = cpu_arms(self.isa, calibration=self.calibration and str(self.calibration))
        self.rows: list[dict] = []
        self.best: dict | None = None
        self.confirmed_speedup: float | None = None
        self.why = ""

    def run(self) -> list[dict]:
        """Compare every arm that applies and is not skipped; keep the rows, the pick and why it won."""
        from workbench.arms.cpu import cpu_context, explain_winner
        from workbench.arms.runner import compare

        ctx = cpu_context(self.task, *self.shape, threads=self.threads, eval_limit=self.eval_limit)
        with compare(self.arms, ctx, tolerance=self.tolerance_pts, skip_kinds=self.skip, rounds=5,
                     seconds=self.seconds / 5, warmup=2, keep=True) as result:
            self.rows, self.best, self.confirmed_speedup = result.rows, result.pick.row, result.confirmed_speedup
            if self.best is None or self.best["baseline"]:
                self.why = f"torch-fp32: {result.pick.reason}"
            else:
                label = f"batch {self.shape[0]} x {self.shape[1]}"
                not_run = {r["arm"]: r["reason"] for r in self.rows if r["status"] != "measured"}
                self.why = explain_winner(self.best["arm"], result.built[self.best["arm"]].variant, ctx.inputs,
                                          {f"{label}, confirmed": result.confirmed_speedup}, self.isa, self.cpu,
                                          not_run, runs=2)[0]
        return self.rows

    def _rows(self) -> list[dict]:
        return self.rows or [{"arm": a.name, "status": "applies" if a.applies else "not available here",
                              "reason": a.reason} for a in self.arms]

    def to_html(self) -> str:
        yes = lambda b: "✓" if b else "✗"  # noqa: E731
        isa = "".join(f"<td>{k}: {yes(v)}</td>" for k, v in self.isa.items())
        body = "".join(
            f"<tr><td>{r['arm']}</td><td>{r['status']}</td><td>{_num(r.get('p50_ms'))}</td>"
            f"<td>{_num(r.get('speedup'))}</td><td>{html.escape(str(r.get('drop') or ''))}"
            f"{' ' + str(r['drop_ci_pts']) if r.get('drop_ci_pts') else ''}</td><td>{html.escape(r['reason'])}</td></tr>"
            for r in self._rows())
        won = f"<p><b>won:</b> {html.escape(self.why)}</p>" if self.why else "<p>run() to measure the arms that apply</p>"
        return (f"<div><b>CPU</b>: {html.escape(self.cpu)}<table><tr>{isa}</tr></table>"
                f"<table><tr><th>arm</th><th>status</th><th>p50 ms</th><th>speed-up</th><th>drop (pts, paired CI)</th>"
                f"<th>why</th></tr>{body}</table>{won}<p><i>{ORT_NOTE}</i></p></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_text(self) -> str:
        """The same content as plain lines (for logs and tests)."""
        from workbench.arms.rows import describe_row

        lines = [f"CPU: {self.cpu} | " + " ".join(f"{k} {'yes' if v else 'no'}" for k, v in self.isa.items())]
        lines += [describe_row(r, 24) if "p50_ms" in r else f"  {r['arm']:24s} {r['status']} ({r['reason']})"
                  for r in self._rows()]
        return "\n".join(lines + ([f"won: {self.why}"] if self.why else []))


def _num(value) -> str:
    return "" if value is None else f"{value:.3g}"


__all__ = ["IsaPanel", "ORT_NOTE"]
