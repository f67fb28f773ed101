"""Verify a serving bundle: every file's sha256, the ONNX model's external data (every file its graph names is carried),
the Triton config against its schema, and the ONNX model's outputs on the reference inputs saved at export (reloaded
with ONNX Runtime)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.serving.bundle.export import BUNDLE_FORMAT, REPOSITORY


class BundleError(ValueError):
    """A bundle that is incomplete, tampered with, or whose model no longer gives its reference outputs."""


@dataclass
class VerifyReport:
    """What :func:`verify_bundle` checked: files hashed, outputs compared and their largest difference."""

    bundle: Path
    name: str
    files_checked: int
    outputs_checked: list[str] = field(default_factory=list)
    max_abs_diff: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_manifest(bundle: str | Path) -> dict:
    bundle = Path(bundle)
    path = bundle / "manifest.json"
    if not bundle.is_dir():
        raise BundleError(f"{bundle} is not a bundle folder: pass the folder `workbench export` wrote")
    if not path.is_file():
        raise BundleError(f"{path} is missing: not a workbench bundle (or an export that never finished)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}): the manifest was edited or truncated") from exc
    if manifest.get("format") != BUNDLE_FORMAT or "files" not in manifest:
        raise BundleError(f"{path} is not a {BUNDLE_FORMAT} manifest: re-export the bundle")
    return manifest


def check_files(bundle: Path, manifest: dict) -> list[str]:
    """Problems with the files: missing, changed (hash or size), or present but not in the manifest."""
    from workbench.util.files import sha256

    problems = []
    for rel, meta in manifest["files"].items():
        path = bundle / rel
        if not path.is_file():
            problems.append(f"missing file {rel}")
        elif path.stat().st_size != meta["bytes"] or sha256(path) != meta["sha256"]:
            problems.append(f"hash mismatch for {rel}: the file changed since export")
    listed = set(manifest["files"]) | {"manifest.json"}
    extra = [p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()]
    problems += [f"unexpected file {rel} (not in the manifest)" for rel in sorted(set(extra) - listed)]
    return problems


def check_external_data(bundle: Path, manifest: dict) -> list[str]:
    """Problems with the ONNX model's external data: a file its graph names that the bundle does not carry.

    The names come from the graph's ``location`` fields (any exporter's naming), so a weights file left behind at
    export is caught here, by name, instead of as an ONNX Runtime load error.
    """
    from workbench.runtime.onnx_files import external_data_files

    onnx_path = model_paths(bundle, manifest)[1]
    if not onnx_path.is_file():
        return []  # reported as a missing file already
    try:
        files = external_data_files(onnx_path)
    except Exception as exc:  # noqa: BLE001 - an unreadable graph or a location outside the bundle
        return [f"{type(exc).__name__}: {exc}"]
    rel_model = onnx_path.relative_to(bundle).as_posix()
    return [f"{rel_model} reads external data {f.relative_to(bundle).as_posix()}, which the bundle does not carry "
            "(not in the manifest): re-export the bundle" for f in files
            if f.relative_to(bundle).as_posix() not in manifest["files"]]


def servable_manifest(bundle: str | Path) -> dict:
    """The manifest of a bundle whose files and ONNX external data check out (``check_files``,
    ``check_external_data``); a :class:`BundleError` naming every problem otherwise: nothing is served from a changed
    or incomplete bundle."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    problems = check_files(bundle, manifest) + check_external_data(bundle, manifest)
    if problems:
        raise BundleError(f"refusing to serve {bundle}: " + "; ".join(problems))
    return manifest


def model_paths(bundle: Path, manifest: dict) -> tuple[Path, Path]:
    model_dir = bundle / REPOSITORY / manifest["name"]
    return model_dir / "config.pbtxt", model_dir / "1" / "model.onnx"


def reference_arrays(bundle: Path) -> tuple[dict, dict]:
    """Reference inputs and outputs (npz, loaded without pickle)."""
    with np.load(bundle / "reference" / "inputs.npz", allow_pickle=False) as f:
        inputs = {k: f[k] for k in f.files}
    with np.load(bundle / "reference" / "outputs.npz", allow_pickle=False) as f:
        outputs = {k: f[k] for k in f.files}
    return inputs, outputs


def compare_outputs(got: dict, want: dict, atol: float, rtol: float) -> tuple[float, list[str]]:
    """Largest |got - want| over all outputs and the names of outputs past tolerance (or missing / misshaped)."""
    worst, bad = 0.0, []
    for name, ref in want.items():
        if name not in got or np.shape(got[name]) != ref.shape:
            bad.append(f"output {name}: shape {np.shape(got.get(name))} != reference {ref.shape}")
            continue
        diff = np.abs(np.asarray(got[name], dtype=np.float64) - ref.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.allclose(got[name], ref, atol=atol, rtol=rtol):
            bad.append(f"output {name}: max |diff| {diff.max():.3g} > atol {atol} + rtol {rtol}")
    return worst, bad


def verify_bundle(bundle: str | Path, threads: int | None = None, raise_on_error: bool = True) -> VerifyReport:
    """Re-hash every file, check config.pbtxt with Triton's schema, rerun the ONNX model on the reference inputs.

    Args:
        bundle: folder written by :func:`workbench.serving.bundle.export.export_bundle`.
        threads: ORT intra-op threads for the rerun.
        raise_on_error: raise :class:`BundleError` listing every problem (else return the report with them).

    Example:
        >>> report = verify_bundle("artifacts/bundles/text-classification-ort-fp32")   # doctest: +SKIP
        >>> report.ok, report.max_abs_diff
    """
    from workbench.runtime.ort import OrtRunner
    from workbench.serving.bundle.triton_config import ModelConfigError, check_model_config

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    report = VerifyReport(bundle, manifest["name"], len(manifest["files"]))
    report.problems = check_files(bundle, manifest) + check_external_data(bundle, manifest)
    config_path, onnx_path = model_paths(bundle, manifest)
    if not report.problems:  # only trust the model and config once their hashes match
        try:
            check_model_config(config_path.read_text(), expected_name=manifest["name"])
            inputs, want = reference_arrays(bundle)
            got = OrtRunner(onnx_path, threads=threads).run(inputs)
            tol = manifest["reference"]
            report.max_abs_diff, bad = compare_outputs(got, want, tol["atol"], tol["rtol"])
            report.outputs_checked = sorted(want)
            report.problems += bad
        except (ModelConfigError, OSError, ValueError) as exc:
            report.problems.append(f"{type(exc).__name__}: {exc}")
    if report.problems and raise_on_error:
        raise BundleError(f"bundle {bundle} failed verification: " + "; ".join(report.problems))
    return report


__all__ = ["verify_bundle", "VerifyReport", "BundleError", "load_manifest", "servable_manifest", "reference_arrays",
           "compare_outputs", "check_external_data"]
