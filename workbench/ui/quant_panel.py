"""The quantisation notebook's panel: calibration method, per-channel, exclusions -> Run -> live Pareto plot.

It only wires widgets to the public API: ``calibrate`` + ``QuantizeStaticConfig`` (workbench.steps), ``measure_variant``,
the ResultsTable, :func:`workbench.ui.plots.pareto_figure` and :class:`workbench.ui.live_plot.LivePlot`. Drivable from code:
set ``panel.method.value`` etc. and call ``panel.run_button.click()`` (or ``panel.run()``).

Example:
    >>> panel = QuantPanel(task, onnx_fp32, table, references=[base_row, ort_row])    # doctest: +SKIP
    >>> panel.method.value = "percentile"; panel.run()
"""
from __future__ import annotations

from workbench.core import apply
from workbench.measure import measure_variant
from workbench.steps.quantize.calibration import METHODS, calibrate
from workbench.steps.quantize.static import QuantizeStaticConfig
from workbench.util.numbers import format_value


class QuantPanel:
    """Widgets for static int8: calibration method, per-channel, float groups; each Run adds one measured row.

    Args:
        task: the task (calibration batches, evaluation, timing inputs).
        onnx_fp32: the fp32 ONNX variant to calibrate and quantise.
        table: the study's ResultsTable (rows are appended as measured).
        references: rows already measured (baseline, ORT fp32, ...) drawn with the new ones.
        groups: {group name: node names} offered as exclusions (e.g. from ``layer_sensitivity``).
        measure_kwargs: passed to ``measure_variant`` (batch_size, seq_len, eval_limit, threads, max_seconds).
        calib_examples: calibration examples (batches of 8).
    """

    def __init__(self, task, onnx_fp32, table, references=(), groups: dict | None = None, calib_examples: int = 64,
                 **measure_kwargs):
        import ipywidgets as w

        from workbench.ui.live_plot import LivePlot

        self.task, self.onnx_fp32, self.table = task, onnx_fp32, table
        self.rows, self.variants = list(references), {}
        self.groups, self.calib_examples, self.measure_kwargs = dict(groups or {}), calib_examples, measure_kwargs
        self.method = w.ToggleButtons(options=list(METHODS), value="minmax", description="calibration")
        self.per_channel = w.Checkbox(value=True, description="per-channel weights")
        self.exclude = w.SelectMultiple(options=sorted(self.groups), description="keep float", rows=6)
        self.run_button = w.Button(description="Quantise and measure", button_style="primary")
        self.status = w.HTML("")
        self.plot = LivePlot()
        self.run_button.on_click(lambda _b: self.run())
        self.widget = w.VBox([w.HBox([self.method, self.per_channel]), self.exclude, self.run_button, self.status,
                              self.plot.output])
        self._ranges: dict[str, object] = {}
        self.redraw()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def run(self) -> dict:
        """Calibrate (once per method), quantise with the current settings, measure, plot; returns the new row."""
        method = self.method.value
        if method not in self._ranges:
            self.status.value = f"calibrating ({method}) ..."
            batches = self.task.calibration_batches(self.calib_examples, batch_size=8)
            self._ranges[method] = calibrate(self.onnx_fp32, batches, method=method)
        excluded = tuple(n for g in self.exclude.value for n in self.groups[g])
        config = QuantizeStaticConfig(ranges=str(self._ranges[method].folder), per_channel=self.per_channel.value,
                                      nodes_to_exclude=excluded)
        self.status.value = "quantising and measuring ..."
        variant = apply(self.onnx_fp32, config)
        self.variants[variant.id] = variant
        row = measure_variant(self.task, variant, **self.measure_kwargs)
        row["variant"] = variant.name + (f"-float:{'+'.join(self.exclude.value)}" if excluded else "")
        self.rows.append(self.table.append(row))
        self.status.value = (f"{row['variant']}: {row.get('metric', 'quality')} {row['quality']:.3f} "
                             f"[{row['quality_ci_low']:.3f}, {row['quality_ci_high']:.3f}], "
                             f"p50 {format_value(row.get('latency_p50_ms'), 3)} ms")
        self.redraw()
        return row

    def redraw(self) -> None:
        from workbench.ui.plots import pareto_figure

        self.plot.update(pareto_figure(self.rows, title=f"Static int8: {_metric(self.rows)} vs p50 latency (live)"))

    @property
    def figure(self):
        from workbench.ui.plots import pareto_figure

        return pareto_figure(self.rows, title=f"{_metric(self.rows)} vs p50 latency")


def _metric(rows) -> str:
    from workbench.results import metric_name

    return metric_name(rows) or "quality"
