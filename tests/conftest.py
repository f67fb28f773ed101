import importlib.util
import os
from pathlib import Path

import pytest
import torch


# Integration work that may run in make test's parallel pass, beside the unit tests: the first two each start one vLLM
# server pinned to one core (~45 s of single-threaded imports in three processes, while its own worker only waits),
# the third renders static HTML reports in chromium; all check outputs, not timings. They form one work unit handed
# out first, so the two engine starts run one after the other, never both on the server's core at once. Moving the
# engine tests out of the serial pass saved ~130 s of CI on 2 cores (serial pass -230 s, parallel pass 480 -> 580 s).
BESIDE_UNITS = ("tests/serving/engine/test_engine_e2e.py", "notebooks/09_llm_engine.ipynb",
                "tests/browser/test_browser_reports.py")
ENGINE_UNIT = "vllm-engine"


def _beside_units(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0] in BESIDE_UNITS


class _PassMarkers:
    """Marks every notebook cell ``serial`` (`make test` runs notebooks in its serial pass) except those in
    BESIDE_UNITS, and every item of BESIDE_UNITS ``beside_units``. With another test process on the 2 cores the
    notebooks slowed 3-13x (distillation's training 35 -> 233 s, the serving-cost cell 29 -> 182 s; their kernels run
    their own torch and ONNX Runtime threads) and notebook 04's small-mode sweep found no stable point.
    A plugin of its own, since this module's collection hook has to run last."""

    @pytest.hookimpl(tryfirst=True)   # before -m reads the markers
    def pytest_collection_modifyitems(self, items):
        for item in items:
            if _beside_units(item.nodeid):
                item.add_marker(pytest.mark.beside_units)
            elif item.nodeid.startswith("notebooks/"):
                item.add_marker(pytest.mark.serial)


class _EngineFirst:
    """xdist's file-by-file scheduler, with the BESIDE_UNITS files as one work unit handed out before any other."""

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        class Scheduler(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return ENGINE_UNIT if _beside_units(nodeid) else super()._split_scope(nodeid)

            def _assign_work_unit(self, node) -> None:
                if ENGINE_UNIT in self.workqueue:
                    self.workqueue.move_to_end(ENGINE_UNIT, last=False)
                super()._assign_work_unit(node)

        return Scheduler(config, log)


def pytest_configure(config):
    config.pluginmanager.register(_PassMarkers(), "workbench-pass-markers")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_EngineFirst(), "workbench-engine-first")


@pytest.hookimpl(trylast=True)   # after -m / -k deselection: the browser test must really be in this session
def pytest_collection_modifyitems(config, items):
    _quickstart_runs_in_the_browser_only(config, items)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _quickstart_runs_in_the_browser_only(config, items) -> None:
    """nbval's run of the quickstart is left out when the browser test runs it in this session: that test executes
    every cell of the same notebook in a real JupyterLab kernel and fails on any cell's error (nbval-lax checks no
    more), then presses the panel's buttons. Running it twice cost ~55 s of CI. Without chromium the browser test
    cannot run, so nbval keeps the notebook."""
    import shutil

    browser = any(item.nodeid.endswith("test_browser_quickstart.py::test_quickstart_in_real_browser") for item in items)
    if not browser or shutil.which("chromium") is None:
        return
    twice = [item for item in items if item.nodeid.startswith("notebooks/01_quickstart.ipynb::")]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]


@pytest.fixture(scope="session")
def benchmark_module():
    """``benchmark_module("quantization")`` imports ``benchmarks/quantization.py`` (benchmarks are scripts, not a
    package) so a test can call its functions and ``main``."""
    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def demo_classifier_onnx(tmp_path_factory):
    """(task, fp32 torch baseline, its ONNX export): the demo classifier exported once per test run for the tests that
    start from it (export, quantisation, sensitivity, OpenVINO). Variants are immutable and each test writes what it
    derives into its own folder, never into this one."""
    from workbench.core import apply
    from workbench.steps import ExportOnnxConfig
    from workbench.tasks import get_task

    task = get_task("text-classification")
    base = task.baseline()
    return task, base, apply(base, ExportOnnxConfig(out_dir=str(tmp_path_factory.mktemp("demo-classifier-onnx"))))


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path, monkeypatch):
    """Every test writes its artifacts under its own tmp dir, never into the repo."""
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))  # read by util.files.artifacts_root
    yield


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(int(os.environ.get("WORKBENCH_TEST_THREADS", "2")))


@pytest.fixture
def step_registry():
    """``register(name, ConfigType, fn)`` for test-only steps; the registry is restored when the test ends."""
    from workbench import core

    added = []

    def register(name: str, config_type: type, fn):
        added.append(config_type)
        return core.register_step(name, config_type)(fn)

    yield register
    # remove only the test's own steps: a real step module imported during the test registered once, for good
    # (it is cached in sys.modules and would never register again)
    for config_type in added:
        core._STEPS.pop(config_type, None)


@pytest.fixture(autouse=True)
def _no_leaked_steps():
    """A test that registers a step outside ``step_registry`` leaves it for every later test: fail it here."""
    yield
    from workbench import core

    leaked = [cfg.__name__ for cfg in core._STEPS if not cfg.__module__.startswith("workbench.")]
    for cfg in [c for c in core._STEPS if not c.__module__.startswith("workbench.")]:
        del core._STEPS[cfg]
    assert not leaked, f"test left steps registered: {leaked}; register them with the step_registry fixture"


@pytest.fixture
def cheap_hf_compile(monkeypatch):
    """HF's compile config with dynamo's "eager" backend: the same compiled-call path (``get_compiled_call``,
    traced by dynamo), without minutes of inductor on a 2-core CI machine."""
    from transformers import CompileConfig

    from workbench.decoding import fast_loop

    def config():
        cfg = CompileConfig(fullgraph=True, dynamic=False, backend="eager")
        cfg._compile_all_devices = True
        return cfg
    monkeypatch.setattr(fast_loop, "hf_static_compile_config", config)


@pytest.fixture
def count_compiled_calls():
    """``count(model)`` wraps the compiled forward HF generate reuses (``model._compiled_call``) with a counter:
    [calls]."""
    def count(model) -> list:
        calls, compiled = [0], model._compiled_call

        def counting(*args, **kwargs):
            calls[0] += 1
            return compiled(*args, **kwargs)
        model._compiled_call = counting
        return calls
    return count

