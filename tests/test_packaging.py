import importlib.util
import types
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]


def _name(spec: str) -> str:
    return re.split(r"[=<>!~\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(s) for s in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        wanted |= {_name(s) for s in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= {_name(s) for s in dep["pip"] if not s.startswith("-e")}
        elif not dep.startswith(("python=", "pip")) or dep.startswith("pip-"):
            have.add(_name(dep.split("=")[0]))
    assert wanted == have, f"only in pyproject: {wanted - have}; only in environment.yml: {have - wanted}"


def test_import_workbench_is_lean():
    code = ("import sys, workbench; workbench.get_task; heavy = [m for m in ('onnxruntime', 'plotly', 'ipywidgets', "
            "'optimum', 'ray', 'transformers') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(workbench._LAZY))
def test_every_lazy_public_name_resolves(name):
    """``workbench.<name>`` imports the module ``_LAZY`` names and finds ``name`` there (a moved module fails here)."""
    module = workbench._LAZY[name]
    assert importlib.util.find_spec(module) is not None, f"workbench.{name} points at {module}, which does not exist"
    obj = getattr(workbench, name)
    if isinstance(obj, types.ModuleType):
        # a subpackage named like its entry point (workbench.optimize): once imported it shadows the lazy name, so
        # the package itself must be callable and call the function of the same name
        assert callable(obj) and getattr(obj, name).__name__ == name, f"workbench.{name} is a module, not callable"
        obj = getattr(obj, name)
    assert getattr(obj, "__name__", name) == name, f"workbench.{name} resolved to {obj!r}"
    assert name in dir(workbench)


def test_readme_commands_exist_in_makefile_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
