"""Imports point down the layer order only (docs/ARCHITECTURE.md, "Layers"):

    util < core < runtime < tasks < steps < decoding < measure < arms < results < serving, cluster < optimize < ui < cli

A module may import its own package and anything below it; packages on one level (serving, cluster) may import each
other. Every ``import`` / ``from ... import`` of every module is read from its source (the ones inside functions
too: a lazy import is still a dependency), plus ``importlib.import_module("workbench....")`` with a literal name.

Two places are outside the order on purpose:
- ``workbench/__init__.py``: its lazy map names the public API of every layer; it imports nothing at import time.
- ``workbench/assets/``: committed demo weights and data, and the offline scripts that made them (run by hand, like
  benchmarks/, they use the whole package). Nothing in the package may import an assets module: the data is read by
  path.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
# One entry per level, lowest first; a comma in the architecture's order = one level.
LEVELS = [("util",), ("core",), ("runtime",), ("tasks",), ("steps",), ("decoding",), ("measure",), ("arms",),
          ("results",), ("serving", "cluster"), ("optimize",), ("ui",), ("cli",)]
RANK = {name: i for i, level in enumerate(LEVELS) for name in level}
EXEMPT_SOURCES = {"assets"}   # offline build scripts (see the module docstring)
NEVER_IMPORTED = {"assets"}   # data, read by path


def _module_parts(path: Path, package: Path) -> list[str]:
    """``workbench/steps/quantize/static.py`` -> ["workbench", "steps", "quantize", "static"]."""
    rel = path.relative_to(package.parent).with_suffix("")
    return list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)


def _targets(node: ast.AST, parts: list[str], is_package: bool) -> list[str]:
    """Dotted names one import node of module ``parts`` brings in (relative imports resolved against it)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = parts if is_package else parts[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # ``from workbench import results`` imports the module workbench.results; ``from workbench.x import y`` is x
        return [f"{base}.{a.name}" for a in node.names] if base == "workbench" else [base]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def _layer(dotted: str) -> str | None:
    """The top-level part of the package a ``workbench.<part>...`` name lies in (None: not the package's own)."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "workbench" and len(parts) > 1 else None


def _offence(source: str, target: str) -> str | None:
    if target in NEVER_IMPORTED:
        return f"imports {target}: nothing imports it (its files are read by path)"
    if target not in RANK:
        return None if target.startswith("__") else f"{target} is in no layer: add it to LEVELS and ARCHITECTURE.md"
    if RANK[target] > RANK[source]:
        return f"{source} imports {target}, which is above it"
    return None


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """``file:line: source -> target (import): why`` for every import against the order."""
    out = []
    for path in sorted(package.rglob("*.py")):
        parts = _module_parts(path, package)
        if len(parts) < 2:
            continue  # workbench/__init__.py: the lazy public map
        source = parts[1]
        if source in EXEMPT_SOURCES:
            continue
        if source not in RANK:
            out.append(f"{path.relative_to(package.parent)}:1: {source} is in no layer: add it to LEVELS")
            continue
        nodes = sorted((n for n in ast.walk(ast.parse(path.read_text(), str(path))) if hasattr(n, "lineno")),
                       key=lambda n: (n.lineno, n.col_offset))
        for node in nodes:
            for dotted in _targets(node, parts, path.name == "__init__.py"):
                target = _layer(dotted)
                why = _offence(source, target) if target and target != source else None
                if why:
                    out.append(f"{path.relative_to(package.parent)}:{node.lineno}: {source} -> {target} "
                               f"({dotted}): {why}")
    return out


def test_imports_point_down_the_layer_order():
    bad = layer_violations()
    if bad:
        pytest.fail("imports against util < core < runtime < tasks < steps < decoding < measure < arms < results < "
                    "serving, cluster < optimize < ui < cli (move the code down, or the import up):\n" + "\n".join(bad),
                    pytrace=False)


def test_every_package_folder_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules <= set(RANK) | EXEMPT_SOURCES


@pytest.mark.parametrize("files, expected", [
    # an upward import inside a function is found, with its line
    ({"steps/a.py": "def f():\n    from workbench.measure.timing import timed_call\n"},
     ["workbench/steps/a.py:2: steps -> measure"]),
    # ``from workbench import results`` is the results module; relative imports resolve against the file
    ({"util/a.py": "from workbench import results\n", "runtime/b.py": "from ..tasks import base\n"},
     ["workbench/runtime/b.py:1: runtime -> tasks", "workbench/util/a.py:1: util -> results"]),
    ({"ui/a.py": "import importlib\nimportlib.import_module('workbench.cli.recommend')\n"},
     ["workbench/ui/a.py:2: ui -> cli"]),
    ({"measure/a.py": "from workbench.assets import build_data\n"}, ["workbench/measure/a.py:1: measure -> assets"]),
    # downward, same level, same package, the root package, assets' own scripts: allowed
    ({"cli/a.py": "from workbench.ui.report import build_report\nfrom workbench import __version__\n",
      "serving/a.py": "import workbench.cluster.spec\n", "cluster/b.py": "from workbench.serving import bundle\n",
      "steps/c.py": "from . import d\nfrom workbench.steps.quantize import static\n",
      "assets/e.py": "from workbench.tasks import causal_lm\n"}, []),
])
def test_the_walk_finds_what_it_should(tmp_path, files, expected):
    package = tmp_path / "workbench"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = layer_violations(package)
    assert [line.split(" (")[0] for line in found] == expected
