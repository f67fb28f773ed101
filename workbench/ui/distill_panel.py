"""The distillation notebook's panel: widgets for student size, T, alpha, epochs; a live loss curve; measured rows.

Kept out of the notebook so it stays thin and so the same code runs under nbval and in tests. ipywidgets and
plotly are imported inside the methods.

Example:
    >>> panel = DistillPanel(task); panel                # doctest: +SKIP
    >>> panel.run_button.click()                         # or press the button
    >>> plots.pareto_figure(panel.rows)
"""
from __future__ import annotations

from workbench.core import apply
from workbench.steps.distill import DistillConfig, family_of, training_callback
from workbench.util.numbers import format_value
from workbench.util.settings import small_mode


class DistillPanel:
    """Train a KD student (+ its no-KD ablation, + int8 versions) of ``task``'s model and measure them all.

    Args:
        task: a classification or causal-LM task; its fp32 CPU baseline is the teacher.
        table: ResultsTable the rows are appended to (optional; ``panel.rows`` always has them).
        eval_limit / max_seconds: test examples per quality number and timing budget per arm.
        max_steps: cap on optimiser steps per student (keeps the notebook within its time budget).
    """

    def __init__(self, task, table=None, eval_limit: int | None = None, max_seconds: float = 5.0,
                 max_steps: int | None = None, threads: int = 2):
        import ipywidgets as w
        import plotly.graph_objects as go

        from workbench.runtime.families import shape_of

        self.task, self.table, self.threads = task, table, threads
        self.eval_limit, self.max_seconds, self.max_steps = eval_limit, max_seconds, max_steps
        self.teacher = task.baseline()
        # the family adapter knows each config's names (Gemma's head_dim is not hidden / heads)
        shape = shape_of(self.teacher.model.config)
        self.layers = w.IntSlider(value=max(1, shape.num_layers // 2), min=1, max=shape.num_layers,
                                  description="layers")
        self.hidden = w.Dropdown(options=list(range(shape.hidden_size, 0, -shape.head_dim)), value=shape.hidden_size,
                                 description="hidden")
        self.temperature = w.FloatSlider(value=2.0, min=1.0, max=8.0, step=0.5, description="T")
        self.alpha = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1, description="alpha")
        self.epochs = w.IntSlider(value=1 if small_mode() else 3, min=1, max=8, description="epochs")
        self.ablation = w.Checkbox(value=True, description="also train the no-KD ablation")
        self.int8 = w.Checkbox(value=True, description="int8 versions of the students")
        self.run_button = w.Button(description="Distil and measure", button_style="primary")
        self.status = w.HTML()
        self.loss_figure = go.FigureWidget(layout=dict(
            title="Training loss (live)", xaxis_title="optimiser step", yaxis_title="loss (KD + CE, nats)",
            yaxis2=dict(title="validation score", overlaying="y", side="right"), template="plotly_white", height=360))
        self.rows: list[dict] = []
        self.variants: dict[str, object] = {}
        self.run_button.on_click(lambda _b: self.run())
        controls = w.VBox([w.HBox([self.layers, self.hidden]), w.HBox([self.temperature, self.alpha]),
                           w.HBox([self.epochs, self.ablation, self.int8]), w.HBox([self.run_button, self.status])])
        self.widget = w.VBox([controls, self.loss_figure])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def config(self) -> DistillConfig:
        return DistillConfig.half_depth(num_layers=self.layers.value, hidden_size=self.hidden.value,
                                        temperature=self.temperature.value, alpha=self.alpha.value,
                                        epochs=self.epochs.value, max_steps=self.max_steps)

    def _live(self, label: str):
        """Callback adding one loss trace and one validation trace for ``label``, refreshed every few steps."""
        fig = self.loss_figure
        fig.add_scatter(x=[], y=[], mode="lines", name=f"{label} loss")
        fig.add_scatter(x=[], y=[], mode="markers+lines", name=f"{label} validation", yaxis="y2")
        loss_trace, val_trace = fig.data[-2], fig.data[-1]
        xs, ys, vx, vy = [], [], [], []

        def callback(event, step, value):
            if event == "loss":
                xs.append(step), ys.append(value)
            else:
                vx.append(step), vy.append(value)
            if event == "val" or step % 5 == 0:
                with fig.batch_update():
                    loss_trace.x, loss_trace.y, val_trace.x, val_trace.y = xs, ys, vx, vy
        return callback

    def run(self) -> list[dict]:
        """Train the students chosen in the widgets, measure teacher and students, return the new rows."""
        from workbench.steps.distill.quant import int8_of
        from workbench.measure import measure_variant

        cfg = self.config()
        configs = [("KD", cfg)] + ([("no-KD", cfg.no_kd())] if self.ablation.value and cfg.alpha > 0 else [])
        arms = {"teacher": self.teacher}
        for label, c in configs:
            self.status.value = f"training {label} student ..."
            with training_callback(self._live(label)):
                arms[label] = apply(self.teacher, c)
            if self.int8.value:
                arms[f"{label} int8"] = int8_of(arms[label], "torch")
        new = []
        for label, variant in arms.items():
            self.status.value = f"measuring {label} ..."
            row = measure_variant(self.task, variant, 1, eval_limit=self.eval_limit, threads=self.threads,
                                  max_seconds=self.max_seconds)
            row.update(arm=label, family=family_of(variant.lineage))
            new.append(self.table.append(row) if self.table is not None else row)
            self.variants[label] = variant
        self.rows.extend(new)
        self.status.value = "done: " + ", ".join(f"{r['arm']} {r.get('metric', 'quality')} {r['quality']:.3f} @ "
                                                 f"{format_value(r.get('latency_p50_ms'), 3)} ms" for r in new)
        return new
