"""The workbench panel: one ipywidgets panel, used by every notebook, over the public API.

Pick a task (a demo, or a local HF directory + data file), tick optimisation steps (discovered from
``workbench.steps``), choose devices, press Run: each variant is built with ``apply``, measured with
``measure_variant``, appended to the study's ResultsTable and drawn on a live Pareto plot as it arrives.
Then export the chosen point. A choice that cannot run here (CUDA without a GPU, a step whose dependency is
missing or that fails) is reported in the panel and the rest of the run goes on.

Everything is drivable from code, so tests and notebooks can press the buttons:

Example:
    >>> panel = WorkbenchPanel(study="quickstart")          # doctest: +SKIP
    >>> panel.tick("quantize_dynamic")                      # or panel.step_boxes[label].value = True
    >>> panel.run_button.click()                            # same as panel.run()
    >>> panel                                               # displays the panel in a notebook
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from workbench.core import apply, registered_steps
from workbench.measure.cost import DEFAULT_INSTANCES
from workbench.runtime import torch_module
from workbench.ui.find_best import FindBest
from workbench.ui.live_plot import LivePlot
from workbench.ui.step_options import StepOption, as_option, discover_step_options, isa_step_options
from workbench.util.numbers import format_value
from workbench.util.settings import small_mode

class WorkbenchPanel:
    """Task, steps and devices in; live Pareto plot, results table and an exported bundle out.

    Args:
        study: results go to ``artifacts/<study>/results.jsonl``.
        task: the task kind selected first ("text-classification" or "causal-lm").
        options: tick boxes to offer: StepOption or (label, config or tuple of configs); default: every
            registered step and preset (``discover_step_options``).
        batch_size: timing batch size; eval_limit: test examples for quality (default: all, 64 in small mode).
        threads: intra-op threads for every arm (default 2, the reference machine's cores).
        instances: price-table instance per device for the $ columns (``workbench/assets/data/prices.csv``);
            default ``measure.cost.DEFAULT_INSTANCES``.

    Example:
        >>> panel = WorkbenchPanel("quickstart"); panel.tick("quantize_dynamic"); panel.run()   # doctest: +SKIP
    """

    def __init__(self, study: str = "quickstart", task: str = "text-classification",
                 options: Iterable | None = None, batch_size: int = 1, eval_limit: int | None = None,
                 threads: int | None = 2, max_seconds: float | None = None, instances: dict | None = None):
        import ipywidgets as w
        import plotly.graph_objects as go
        import torch

        from workbench.tasks import BUILTIN_TASKS

        self.study, self.threads = study, threads
        self.instances = {**DEFAULT_INSTANCES, **(instances or {})}
        self.max_seconds = max_seconds or (3.0 if small_mode() else 10.0)
        if options is None:
            options = discover_step_options() + isa_step_options(_calibration_set(task))
        self.options = [as_option(o) for o in options]
        self.rows: list[dict] = []           # rows measured by this panel (the plot shows these)
        self.variants: dict[str, Any] = {}   # variant id -> Variant, for export
        self.messages: list[str] = []
        self.table = None
        self._tasks: dict = {}
        self._applied: dict = {}
        self._task_key: tuple = ()

        self.task_kind = w.Dropdown(options=list(BUILTIN_TASKS), value=task, description="task")
        self.model_dir = w.Text(placeholder="demo weights, or a local HF model directory", description="model dir")
        self.data_path = w.Text(placeholder="JSONL/CSV eval data (with a model dir)", description="data")
        self.step_boxes = {o.label: w.Checkbox(value=False, description=o.label + (" (unavailable)" if o.reason else ""),
                                               indent=False, layout=w.Layout(width="auto")) for o in self.options}
        gpu = torch.cuda.is_available()
        self.devices = {"cpu": w.Checkbox(value=True, description="CPU", indent=False),
                        "cuda": w.Checkbox(value=False, description="CUDA" if gpu else "CUDA (no GPU seen)", indent=False)}
        self.batch_size = w.BoundedIntText(value=batch_size, min=1, max=4096, description="batch")
        default_limit = eval_limit if eval_limit is not None else (64 if small_mode() else 0)
        self.eval_limit = w.BoundedIntText(value=default_limit, min=0, max=10**7, description="eval n (0=all)")
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.export_choice = w.Dropdown(options=[], description="export")
        self.export_button = w.Button(description="Export bundle", icon="box", disabled=True)
        self.status = w.HTML()
        self.output = w.Output()
        self.plot = LivePlot(go.Figure(layout=dict(title="Run to measure variants", template="plotly_white", height=480)))
        self.run_button.on_click(lambda _b: self.run())
        self.export_button.on_click(lambda _b: self.export())
        self.finder = FindBest(self)          # the "Find the best" row: its boxes, button and live view
        self.widget = w.VBox([
            w.HTML(f"<b>Workbench</b> - study <code>{study}</code>"),
            w.HBox([self.task_kind, self.model_dir, self.data_path]),
            w.HTML("Optimisation steps (each applied to the baseline):"),
            w.GridBox(list(self.step_boxes.values()) or [w.HTML("<i>no steps registered yet</i>")],
                      layout=w.Layout(grid_template_columns="repeat(3, 33%)")),
            w.HBox([w.HTML("devices:"), *self.devices.values(), self.batch_size, self.eval_limit]),
            self.run_button, self.output, self.status, self.plot.output,
            w.HBox([self.export_choice, self.export_button]),
            self.finder.widget])

    # ---- drivable state -------------------------------------------------------------------------------------------
    def tick(self, *labels: str, value: bool = True) -> "WorkbenchPanel":
        """Tick (or untick) step boxes by label; an unknown label names the known ones."""
        for label in labels:
            if label not in self.step_boxes:
                raise ValueError(f"no step option {label!r}: choose from {sorted(self.step_boxes)}")
            self.step_boxes[label].value = value
        return self

    @property
    def results(self):
        """The rows this panel measured, as a ResultsTable (the whole study is ``self.table``)."""
        from workbench.results import ResultsTable

        return ResultsTable(None, self.rows)

    def say(self, message: str) -> None:
        """Add a line to the panel's status area (also kept in ``self.messages`` for code and tests)."""
        self.messages.append(message)
        self.status.value = "<br>".join(_escape(m) for m in self.messages[-12:])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ---- run --------------------------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Measure the baseline and every ticked step on every ticked device; returns the new rows."""
        from tqdm.auto import tqdm

        from workbench.measure import environment_fingerprint
        from workbench.results import ResultsTable

        self.run_button.disabled = True
        start = len(self.rows)
        try:
            task = self._task()
            if task is None:
                return []
            self.table = ResultsTable.for_study(self.study, environment=environment_fingerprint())
            devices = self._devices()
            chosen = [o for o in self.options if self.step_boxes[o.label].value]
            for option in (o for o in chosen if o.reason):
                self.say(f"✗ {option.label}: skipped, {option.reason}")
            jobs = [(d, o) for d in devices for o in [None] + [o for o in chosen if not o.reason]]
            with self.output:
                for device, option in tqdm(jobs, desc="variants", unit="variant"):
                    self._run_one(task, device, option)
            self.say(f"done: {len(self.rows) - start} rows in {self.table.path}")
        finally:
            self.run_button.disabled = False
        return self.rows[start:]

    def _task(self):
        from workbench.tasks import get_task

        key = (self.task_kind.value, self.model_dir.value.strip() or None, self.data_path.value.strip() or None)
        self._task_key = key
        if key not in self._tasks:
            try:
                self._tasks[key] = get_task(key[0], key[1] and Path(key[1]).expanduser(), key[2])
            except Exception as err:  # noqa: BLE001 - a bad task choice is reported, the panel stays usable
                self.say(f"✗ task {key[0]}: {err}")
                return None
        return self._tasks[key]

    def _devices(self) -> list[str]:
        import torch

        devices = [d for d, box in self.devices.items() if box.value]
        if "cuda" in devices and not torch.cuda.is_available():
            devices.remove("cuda")
            self.say("✗ CUDA: torch sees no GPU on this machine, so the CUDA arm is skipped (CPU arms still run)")
        if not devices:
            self.say("✗ no device that can run here is ticked: tick CPU")
        return devices

    def _run_one(self, task, device: str, option: StepOption | None) -> None:
        from workbench.measure import measure_variant

        label = option.label if option else f"baseline ({device})"
        try:
            key = (self._task_key, "baseline", device)
            if key not in self._applied:
                self._applied[key] = task.baseline(device)
            variant = self._applied[key]
            detours: list[str] = []      # steps that failed on the torch model and ran on its ONNX export
            for config in option.configs if option else ():
                variant = self._apply(variant, config, detours)
            if detours:
                label = f"{label} (on the ONNX export)"
                self.say(f"⚠ {label} on {device}: " + "; ".join(detours) + f"; measured {_route(variant)}")
            limit = self.eval_limit.value or None
            row = measure_variant(task, variant, self.batch_size.value, quality=True, eval_limit=limit,
                                  threads=self.threads, max_seconds=self.max_seconds)
            row = self._with_cost(row)
        except Exception as err:  # noqa: BLE001 - one failing variant must not stop the others
            self.say(f"✗ {label} on {device}: {type(err).__name__}: {err}")
            self.table.append({"task": task.name, "variant": label, "device": device, "failed": True,
                               "error": f"{type(err).__name__}: {err}"})
            return
        self.variants[variant.id] = variant
        extra = {"route": _route(variant), "torch_errors": detours} if detours else {}
        self.rows.append(self.table.append({**row, "option": label, **extra}))
        self.say(f"✓ {label} on {device}: {row.get('metric', 'quality')} {format_value(row.get('quality'))}, "
                 f"p50 {format_value(row.get('latency_p50_ms'), 3)} ms")
        self.redraw()

    def _with_cost(self, row: dict) -> dict:
        """Add $ per 1k requests / 1M tokens for the device's price-table instance, when the cost model exists."""
        try:
            from workbench.measure.cost import add_costs
        except ImportError:
            return row
        instance = self.instances.get(row.get("device"), self.instances["cpu"])
        try:
            return add_costs([row], instance)[0]
        except Exception as err:  # noqa: BLE001 - a bad price table costs the cost columns, not the measurement
            self.say(f"✗ cost for {instance}: {err}")
            return row

    def _apply(self, variant, config, detours: list[str] | None = None):
        """Apply one step. Steps that run on an ONNX model (ORT quantisation, graph optimisation) fail on a torch
        baseline; every step is offered as a tick box on its own, so the panel then runs them on the ONNX export,
        never silently: the torch error goes into ``detours`` (the panel reports it and labels the row with the
        route that ran), and when the ONNX route fails too, the error names both, the torch one first."""
        try:
            return self._apply_once(variant, config)
        except Exception as first:  # noqa: BLE001
            export_cfg = registered_steps().get("export_onnx")
            # only a torch model in memory can be exported to ONNX: any other variant's failure stands as it is
            if torch_module(variant) is None or export_cfg is None or isinstance(config, export_cfg):
                raise
            step = _step_name(config)
            first_error = f"{step} failed on the torch model: {type(first).__name__}: {first}"
            try:
                onnx = self._apply_once(variant, export_cfg())
            except Exception as export_error:  # noqa: BLE001
                raise RuntimeError(f"{first_error}; exporting it to ONNX to run {step} there failed too: "
                                   f"{type(export_error).__name__}: {export_error}") from first
            try:
                out = self._apply_once(onnx, config)
            except Exception as second:  # noqa: BLE001
                raise RuntimeError(f"{first_error}; on its ONNX export: {type(second).__name__}: {second}") from second
            if detours is not None:
                detours.append(first_error + ", so it ran on the ONNX export")
            return out

    def _apply_once(self, variant, config):
        """``apply`` with a memo: variants never change, so the same (parent, config) is built once per panel."""
        key = (self._task_key, variant.id, repr(config))
        if key not in self._applied:
            self._applied[key] = apply(variant, config)
        return self._applied[key]

    def redraw(self) -> None:
        """Redraw the live Pareto plot from this panel's rows and refresh the export choices."""
        from workbench.ui.plots import pareto_figure
        from workbench.results import pareto_front

        from workbench.results import metric_name

        metric = metric_name(self.rows) or "quality"
        self.plot.update(pareto_figure(self.rows, title=f"{self.study}: {metric} vs p50 latency (live)"))
        # A serving bundle is ONNX: offer the Pareto front of the variants that are ONNX or can be exported to it
        # (torch fp32). Torch-only forms such as torch dynamic int8 have no ONNX export.
        exportable = [r for r in self.rows if _exportable(self.variants.get(r.get("variant_id")))]
        front = pareto_front(exportable)
        self.export_choice.options = [(f"{r['variant']} [{r['variant_id']}] p50 {r['latency_p50_ms']:.3g} ms", r["variant_id"])
                                      for r in front]
        if front and self.export_choice.value is None:
            self.export_choice.value = front[0]["variant_id"]   # ipywidgets leaves it unset when options change
        self.export_button.disabled = not front

    @property
    def figure(self):
        """The live plot's current plotly Figure."""
        return self.plot.figure

    # ---- find the best (workbench optimize) --------------------------------------------------------------------
    def find_best(self):
        """Search every arm and batch size under the budget (``workbench.optimize``) with the panel's task, model
        and device and the SLO / drop / budget boxes; the same as pressing Find the best. Returns the
        OptimizeResult, or None (the panel says why)."""
        return self.finder.run()

    # ---- export -----------------------------------------------------------------------------------------------------
    def export(self, variant_id: str | None = None, to: str | Path | None = None, slo_ms: float | None = None):
        """Export the chosen Pareto point as a serving bundle: a quick batching sweep of that variant (Triton's
        batching plan comes from it), then ``workbench.serving.bundle.export.export_bundle``. Returns the bundle folder or None."""
        variant_id = variant_id or self.export_choice.value
        if variant_id not in self.variants:
            self.say("✗ export: run first, then choose a point on the Pareto front")
            return None
        try:
            from workbench.serving.bundle.export import export_bundle
            from workbench.measure.batching import SweepConfig, sweep_batching
        except ImportError as err:
            self.say(f"✗ export: the serving-bundle exporter is not available here ({err})")
            return None
        variant, task = self.variants[variant_id], self._task()
        target = Path(to) if to else Path(self.table.path).parent / "bundles" / f"{variant.name}-{variant.id}"
        bundle, error = None, None
        # The try sits inside the Output context: with a live frontend, Output.__exit__ swallows exceptions.
        with self.output:
            try:
                sweep_batching(task, variant, SweepConfig.quick(), table=self.table)
                # Interactive use on a busy laptop: a plan from unstable points is exported, marked provisional.
                bundle = export_bundle(variant, self.table.filter(variant_id=variant_id), to=target, task=task,
                                       slo_ms=slo_ms, overwrite=True, allow_unstable=True)
            except Exception as err:  # noqa: BLE001 - say why; the study and the panel stay as they are
                error = err
        if error is not None:
            self.say(f"✗ export {variant.name}: {type(error).__name__}: {error}")
            return None
        self.say(f"✓ exported {variant.name} to {bundle}")
        return bundle


def _exportable(variant) -> bool:
    """A bundle is ONNX: an ONNX Runtime variant, or a torch fp32 model that exports to one (not OpenVINO IR, not a
    torch-quantised module)."""
    from workbench.runtime import onnx_file

    if variant is None:
        return False
    return onnx_file(variant) is not None or (torch_module(variant) is not None and variant.precision == "fp32")


def _calibration_set(task_kind: str) -> str | None:
    """The demo task's calibration split saved for the static int8 CPU arms (None, and those arms say why, if not)."""
    try:
        from workbench.steps.openvino import save_calibration_set
        from workbench.tasks import get_task

        batches = get_task(task_kind).calibration_batches(32 if small_mode() else 128, batch_size=8)
        return str(save_calibration_set(batches))
    except Exception:  # noqa: BLE001 - no calibration data: the static arms are offered as unavailable, with the reason
        return None


def _step_name(config) -> str:
    """The registered step name of a config (its type name when not registered)."""
    return next((name for name, cfg in registered_steps().items() if isinstance(config, cfg)), type(config).__name__)


def _route(variant) -> str:
    """What ran, from the variant's lineage: ``baseline → export_onnx → optimize``."""
    return " → ".join(["baseline"] + [step for step, _cfg in variant.lineage])


def _escape(text: str) -> str:
    import html

    return html.escape(text)


__all__ = ["WorkbenchPanel"]
