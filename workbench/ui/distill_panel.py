"""The distillation notebook's panel: widgets for student size, T, alpha, epochs and the CPU arms to stack the student
with; a live loss curve; the rows of the study.

The panel only calls the package (``workbench.arms.distill_study.run``: the student trained once, every arm timed side
by side and paired against the teacher by the one arm runner) and reads its rows; it measures nothing itself. Kept out
of the notebook so it stays thin and so the same code runs under nbval and in tests. ipywidgets and plotly are
imported inside the methods.

Example:
    >>> panel = DistillPanel(task); panel                # doctest: +SKIP
    >>> panel.run_button.click()                         # or press the button
    >>> plots.pareto_figure(panel.rows)
"""
from __future__ import annotations

from workbench.steps.distill import training_callback
from workbench.util.numbers import format_value
from workbench.util.settings import small_mode

# Stacked arms ticked by default: cheap to build on every ISA (no compile, no calibration).
DEFAULT_STACK = ("student+torch-int8-dynamic", "student+ort-int8-dynamic")


class DistillPanel:
    """Train a KD student (+ its no-KD ablation) of ``task``'s model, stack it with the chosen CPU arms, compare all.

    Args:
        task: a classification task; its fp32 CPU baseline is the teacher.
        table: ResultsTable the rows are appended to (optional; ``panel.rows`` always has them).
        eval_limit: examples per quality number; max_seconds: timing budget per arm per round.
        max_steps: cap on optimiser steps per student (keeps the notebook within its time budget).
        retention: the minimum retention of the teacher's accuracy the pick must keep (its tolerance in points).
    """

    def __init__(self, task, table=None, eval_limit: int | None = None, max_seconds: float = 5.0,
                 max_steps: int | None = None, threads: int = 2, retention: float = 0.96, rounds: int = 3):
        import ipywidgets as w
        import plotly.graph_objects as go

        from workbench.arms.distilled import PREFIX, student_arms
        from workbench.runtime.families import shape_of

        self.task, self.table, self.threads, self.retention, self.rounds = task, table, threads, retention, rounds
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
        stackable = [a.name for a in student_arms() if a.name.startswith(PREFIX) and a.applies]
        self.stack = w.SelectMultiple(options=stackable, value=[n for n in DEFAULT_STACK if n in stackable],
                                      description="stack with", rows=min(8, max(1, len(stackable))))
        self.run_button = w.Button(description="Distil and measure", button_style="primary")
        self.status = w.HTML()
        self.loss_figure = go.FigureWidget(layout=dict(
            title="Training loss (live)", xaxis_title="optimiser step", yaxis_title="loss (KD + CE, nats)",
            yaxis2=dict(title="validation score", overlaying="y", side="right"), template="plotly_white", height=360))
        self.rows: list[dict] = []
        self.summary: dict = {}
        self.run_button.on_click(lambda _b: self.run())
        controls = w.VBox([w.HBox([self.layers, self.hidden]), w.HBox([self.temperature, self.alpha]),
                           w.HBox([self.epochs, self.ablation]), self.stack, w.HBox([self.run_button, self.status])])
        self.widget = w.VBox([controls, self.loss_figure])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def distill_kw(self) -> dict:
        """The student recipe of the widgets (``DistillConfig.half_depth`` overrides)."""
        return dict(num_layers=self.layers.value, hidden_size=self.hidden.value, temperature=self.temperature.value,
                    alpha=self.alpha.value, epochs=self.epochs.value, max_steps=self.max_steps)

    def _live(self, labels: list[str]):
        """Callback drawing one loss trace and one validation trace per training (the KD student, then the no-KD
        ablation: a new training starts at step 1), refreshed every few steps."""
        fig = self.loss_figure
        state = {}

        def start(label):
            fig.add_scatter(x=[], y=[], mode="lines", name=f"{label} loss")
            fig.add_scatter(x=[], y=[], mode="markers+lines", name=f"{label} validation", yaxis="y2")
            state.update(loss=fig.data[-2], val=fig.data[-1], xs=[], ys=[], vx=[], vy=[])

        def callback(event, step, value):
            if event == "loss" and step == 1:
                start(labels.pop(0) if labels else "student")
            if not state:
                return
            if event == "loss":
                state["xs"].append(step), state["ys"].append(value)
            else:
                state["vx"].append(step), state["vy"].append(value)
            if event == "val" or step % 5 == 0:
                with fig.batch_update():
                    state["loss"].x, state["loss"].y = state["xs"], state["ys"]
                    state["val"].x, state["val"].y = state["vx"], state["vy"]
        return callback

    def run(self) -> list[dict]:
        """Run the study with the widgets' settings (``arms.distill_study.run``) and return its rows."""
        from workbench.arms import distill_study

        kw = self.distill_kw()
        ablation = self.ablation.value and kw["alpha"] > 0
        self.status.value = "training the student, then timing the arms side by side ..."
        with training_callback(self._live(["KD", "no-KD"] if ablation else ["KD"])):
            study = distill_study.run(self.task, 1, 128, self.threads, retention_min=self.retention,
                                      ablation=ablation, eval_limit=self.eval_limit, only=list(self.stack.value),
                                      rounds=self.rounds, seconds=self.max_seconds,
                                      log=lambda msg: setattr(self.status, "value", msg.strip()), **kw)
        study.close()
        new = [self.table.append(row) if self.table is not None else row for row in study.rows]
        self.rows.extend(new)
        self.summary = study.summary
        self.status.value = "done: " + ", ".join(f"{r['arm']} {r.get('metric', 'quality')} {r['quality']:.3f} @ "
                                                 f"{format_value(r.get('latency_p50_ms'), 3)} ms" for r in new)
        return new
