"""What the quickstart panel's "Find the best" shows while `workbench.optimize` runs: progress with an ETA, a Pareto
figure redrawn on every measured row, then the decision in one line.

``OptimizeView.handle`` is the ``on_event`` callback optimize calls (events: ``stage``, ``row``, ``done``; see
``workbench.optimize.optimize``). It only reads events, so it is driven the same way in tests, without a kernel.

Example:
    >>> view = OptimizeView(slo_ms=50, percentile="p99", max_drop=1.0, budget_s=1200)        # doctest: +SKIP
    >>> optimize("text-classification", on_event=view.handle); view.widget
"""
from __future__ import annotations

from workbench.ui.live_plot import LivePlot
from workbench.ui.plots_decision import cost_text, points_figure
from workbench.util.numbers import format_value


class OptimizeView:
    """Progress bar + label (stage, elapsed, ETA, budget), a live Pareto figure and the decision summary."""

    def __init__(self, slo_ms: float = 50.0, percentile: str = "p99", max_drop: float = 1.0,
                 budget_s: float | None = None, unit: str = "USD per 1M requests"):
        import ipywidgets as w

        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, description="optimize",
                                        layout=w.Layout(width="40%"))
        self.label = w.Label("press Find the best to search every arm and batch size under the budget")
        self.summary = w.HTML()
        self.plot = LivePlot()
        self.plot.output.layout.display = "none"      # no empty chart under the panel before a search starts
        self.widget = w.VBox([w.HBox([self.progress, self.label]), self.summary, self.plot.output])
        self.start(slo_ms, percentile, max_drop, budget_s, unit)

    def start(self, slo_ms: float, percentile: str, max_drop: float, budget_s: float | None,
              unit: str = "USD per 1M requests") -> None:
        """Reset for a new search with these limits (the figure's SLO and max-drop lines come from them)."""
        self.slo = {"ms": slo_ms, "percentile": percentile}
        self.max_drop, self.budget_s, self.unit = max_drop, budget_s, unit
        self.rows: list[dict] = []
        self.stage, self.candidates, self.elapsed_s, self.eta_s = None, None, 0.0, None
        self.decision: dict | None = None
        self.progress.value, self.progress.bar_style = 0.0, ""
        self.summary.value = ""
        self.redraw()

    # ---- events -------------------------------------------------------------------------------------------------
    def handle(self, event: dict) -> None:
        """optimize's ``on_event``: update the progress on every event, redraw on rows, summarise on done."""
        event_type = event.get("type")
        self.plot.output.layout.display = None
        if event_type == "done":
            self.finish(event["decision"])
            return
        self.elapsed_s = event.get("elapsed_s", self.elapsed_s)
        self.eta_s = event.get("eta_s")
        if event_type == "stage":
            self.stage, self.candidates = event.get("stage"), event.get("candidates")
            self.budget_s = event.get("budget_s", self.budget_s)
        elif event_type == "row":
            self.rows.append(event["row"])
            self.redraw()
        self.progress.value = self.fraction()
        self.label.value = self.progress_text()

    def finish(self, decision: dict) -> None:
        self.decision = decision
        self.elapsed_s = decision.get("elapsed_s", self.elapsed_s)
        self.unit = decision.get("cost_unit") or self.unit
        complete = bool(decision.get("complete"))
        self.progress.value, self.progress.bar_style = (1.0, "success") if complete else (self.fraction(), "warning")
        self.label.value = f"{'done' if complete else 'stopped'} after {_clock(self.elapsed_s)}"
        self.summary.value = _escape(decision_summary(decision))

    def report_at(self, path) -> None:
        """Say where the HTML report of the decision was written."""
        self.summary.value += f"<br>report: <code>{_escape(str(path))}</code>"

    # ---- what is shown ------------------------------------------------------------------------------------------
    def fraction(self) -> float:
        """Share done: elapsed / (elapsed + ETA) when optimize gives an ETA, else elapsed / budget."""
        total = (self.elapsed_s + self.eta_s) if self.eta_s is not None else self.budget_s
        return min(1.0, self.elapsed_s / total) if total else 0.0

    def progress_text(self) -> str:
        parts = [f"stage {self.stage or '—'}"]
        if self.candidates is not None:
            parts.append(f"{self.candidates} candidates")
        parts += [f"{len(self.rows)} rows", f"{_clock(self.elapsed_s)} elapsed",
                  f"ETA {_clock(self.eta_s) if self.eta_s is not None else '—'}"]
        if self.budget_s:
            parts.append(f"budget {_clock(self.budget_s)}")
        return " · ".join(parts)

    def points(self) -> list[dict]:
        """One point per arm and batch size (its newest row): the tail at the SLO percentile and the arm's drop.

        Quality is measured per arm, so a sweep row without a drop takes the arm's from an earlier row; a row
        without the tail at this percentile (a screen's p50) is not drawn as if it were one.
        """
        pct = self.slo["percentile"]
        drops: dict = {}
        newest: dict = {}
        for row in self.rows:
            drop = _first(row, "quality_drop", "drop_pts")
            if drop is not None:
                drops[row.get("arm")] = drop
            tail = _first(row, f"latency_{pct}_ms", f"{pct}_ms", "tail_ms")
            if tail is not None:
                newest[(row.get("arm"), row.get("batch_size"))] = {
                    "arm": row.get("arm"), "batch_size": row.get("batch_size"), "tail_ms": tail,
                    "usd_per_1m": row.get("usd_per_1m") if isinstance(row.get("usd_per_1m"), dict) else None}
        return [{**p, "quality_drop": drops.get(p["arm"])} for p in newest.values()]

    def redraw(self) -> None:
        points = self.points()
        shown = sum(p["quality_drop"] is not None for p in points)
        metric = next((r["metric"] for r in self.rows if r.get("metric")), None)
        title = (f"Live Pareto: {shown} of {len(self.rows)} rows drawn (the others await their "
                 f"{self.slo['percentile']} or quality)" if self.rows else "Live Pareto: no rows yet")
        self.plot.update(points_figure(points, self.slo, self.max_drop, metric, self.unit, title))

    @property
    def figure(self):
        return self.plot.figure


def decision_summary(decision: dict) -> str:
    """One line: the pick, its confirmed speed-up, tail vs SLO, drop, cost per instance (or why there is none)."""
    slo = decision.get("slo") or {}
    pick = decision.get("pick")
    if not pick:
        line = "No pick: no arm met the SLO within the quality limit; the report says why each lost"
    else:
        quality = pick.get("quality") or {}
        confirmed = pick.get("confirmed_speedup")
        speed = (f"confirmed {_f(confirmed)}x faster than the baseline" if confirmed is not None
                 else f"{_f(pick.get('selection_speedup'))}x in selection (not confirmed)")
        ci = quality.get("ci") if isinstance(quality.get("ci"), list) and len(quality["ci"]) == 2 else None
        line = (f"Pick: {pick['arm']} at batch {_f(pick.get('batch_size'))}, {speed}; "
                f"{slo.get('percentile', 'tail')} {_f(pick.get('tail_ms'))} ms (SLO {_f(slo.get('ms'))} ms), "
                f"drop {_f(quality.get('drop'))}" + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else "") + "; "
                + cost_text(pick.get("usd_per_1m"), decision.get("cost_unit") or "USD per 1M requests"))
    if not decision.get("complete"):
        line += f". Incomplete run: resume with {decision.get('resume') or 'the same command'}"
    return line


def _f(value) -> str:
    """3 significant digits; an absent figure reads "—", never 0."""
    return "—" if value is None else format_value(value, 3)


def _first(row: dict, *keys):
    return next((row[k] for k in keys if row.get(k) is not None), None)


def _clock(seconds: float | None) -> str:
    """m:ss (h:mm:ss past an hour)."""
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _escape(text: str) -> str:
    import html

    return html.escape(text)


__all__ = ["OptimizeView", "decision_summary"]
