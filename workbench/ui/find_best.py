"""The quickstart panel's "Find the best" row: SLO, percentile, max drop and budget boxes and a button that runs
``workbench.optimize.optimize`` on the panel's task, model and device, with its progress, live Pareto and decision
shown by ``OptimizeView`` and the study's HTML report written at the end.

optimize is imported when the button is pressed, so the panel works in an install without it (the row then says
so in one line).
"""
from __future__ import annotations

from pathlib import Path

from workbench.ui.optimize_view import OptimizeView, decision_summary


class FindBest:
    """Widgets and handler of Find the best for a ``WorkbenchPanel`` (reads its task boxes, says through it)."""

    def __init__(self, panel):
        import ipywidgets as w

        self.panel = panel
        # labels at their own width, boxes narrow: the row fits beside the button in a notebook column
        box = {"style": {"description_width": "initial"}, "layout": w.Layout(width="160px")}
        self.slo_ms = w.BoundedFloatText(value=50.0, min=0.1, max=1e6, description="SLO (ms)", **box)
        self.percentile = w.Dropdown(options=["p50", "p90", "p99"], value="p99", description="at",
                                     style=box["style"], layout=w.Layout(width="100px"))
        self.max_drop = w.BoundedFloatText(value=1.0, min=0.0, max=100.0, description="max drop", **box)
        self.budget_min = w.BoundedFloatText(value=20.0, min=0.5, max=24 * 60.0, description="budget (min)",
                                             style=box["style"], layout=w.Layout(width="180px"))
        self.button = w.Button(description="Find the best", button_style="success", icon="search")
        self.view = OptimizeView(self.slo_ms.value, self.percentile.value, self.max_drop.value,
                                 self.budget_min.value * 60)
        self.button.on_click(lambda _b: self.run())
        self.widget = w.VBox([
            w.HTML("<b>Find the best</b>: every arm and batch size for this task under a time budget "
                   "(<code>workbench optimize</code>): the fastest within the quality limit that meets the SLO, its "
                   "bundle, and a report of why the others lost."),
            w.HBox([self.slo_ms, self.percentile, self.max_drop, self.budget_min, self.button]), self.view.widget])

    @property
    def study(self) -> str:
        """Apart from the panel's own rows; pressing again with the same settings resumes it."""
        return f"{self.panel.study}-optimize"

    def run(self):
        """Run optimize with the boxes' settings; returns its OptimizeResult or None (the panel says why)."""
        panel = self.panel
        try:
            from workbench.optimize import optimize
        except ImportError as err:
            panel.say(f"✗ Find the best: workbench.optimize is not available in this install ({err})")
            return None
        import torch

        device = "cuda" if panel.devices["cuda"].value and torch.cuda.is_available() else "cpu"
        task = panel.task_kind.value
        self.view.start(self.slo_ms.value, self.percentile.value, self.max_drop.value, self.budget_min.value * 60,
                        "USD per 1M output tokens" if task == "causal-lm" else "USD per 1M requests")
        model, data = panel.model_dir.value.strip() or None, panel.data_path.value.strip() or None
        result, error = None, None
        self.button.disabled = True
        # The try sits inside the Output context: with a live frontend, Output.__exit__ swallows exceptions.
        with panel.output:
            try:
                result = optimize(task, model=model and str(Path(model).expanduser()), data=data,
                                  slo_ms=self.slo_ms.value, percentile=self.percentile.value,
                                  max_drop=self.max_drop.value, budget_s=self.budget_min.value * 60, device=device,
                                  instances=(panel.instances[device],), study=self.study,
                                  on_event=self.view.handle, progress=False)
            except KeyboardInterrupt:
                error = "interrupted; every measured row is kept: press Find the best again to resume"
            except Exception as err:  # noqa: BLE001 - one line saying why; the panel stays usable
                error = f"{type(err).__name__}: {err}"
            finally:
                self.button.disabled = False
        if error is not None:
            panel.say(f"✗ Find the best: {error}")
            return None
        if self.view.decision is None:          # no done event came: show the decision optimize returned
            self.view.finish(result.decision)
        report = self._report(result.study_dir)
        panel.say(f"✓ Find the best: {decision_summary(result.decision)}" + (f"; report {report}" if report else "")
                  + (f"; bundle {result.bundle}" if result.bundle else ""))
        return result

    def _report(self, study_dir):
        from workbench.ui.report import build_report

        try:
            report = build_report(study_dir)
        except Exception as err:  # noqa: BLE001 - the decision stands without its HTML report
            self.panel.say(f"✗ Find the best: the report could not be written: {type(err).__name__}: {err}")
            return None
        self.view.report_at(report)
        return report


__all__ = ["FindBest"]
