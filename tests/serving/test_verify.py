"""Verify: a good bundle passes; tampered, missing or extra files fail with the file named, and so does the CLI."""
import subprocess
import sys

import pytest
from demo_bundle import copy_bundle, demo_setup

from workbench.serving.bundle.verify import BundleError, servable_manifest, verify_bundle


def _cli(*args):
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_good_bundle_verifies():
    report = verify_bundle(demo_setup()[3])
    assert report.ok and report.outputs_checked == ["logits"] and report.max_abs_diff <= 1e-4
    assert report.files_checked >= 7


def test_tampered_missing_and_extra_files_are_named(tmp_path):
    bundle = copy_bundle(tmp_path / "b")
    name = verify_bundle(bundle).name
    onnx = bundle / "model_repository" / name / "1" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    (bundle / "reference" / "outputs.npz").unlink()
    (bundle / "notes.txt").write_text("hello")
    report = verify_bundle(bundle, raise_on_error=False)
    assert not report.ok
    text = " ".join(report.problems)
    assert f"hash mismatch for model_repository/{name}/1/model.onnx" in text
    assert "missing file reference/outputs.npz" in text and "unexpected file notes.txt" in text
    with pytest.raises(BundleError, match="hash mismatch"):
        verify_bundle(bundle)
    # what serve-check and the load search start from: every problem named, nothing served
    with pytest.raises(BundleError) as err:
        servable_manifest(bundle)
    assert str(err.value).startswith(f"refusing to serve {bundle}: ")
    assert all(problem in str(err.value) for problem in report.problems)
    assert servable_manifest(demo_setup()[3])["name"] == name


def test_changed_reference_outputs_fail_even_with_matching_hashes(tmp_path):
    """A manifest re-hashed by hand cannot hide outputs that no longer match the model."""
    import json

    import numpy as np

    from workbench.serving.bundle.export import write_manifest

    bundle = copy_bundle(tmp_path / "b")
    with np.load(bundle / "reference" / "outputs.npz") as f:
        outputs = {k: f[k] + 1.0 for k in f.files}
    np.savez(bundle / "reference" / "outputs.npz", **outputs)
    manifest = json.loads((bundle / "manifest.json").read_text())
    write_manifest(bundle, {k: v for k, v in manifest.items() if k not in ("files", "format", "workbench_version",
                                                                            "created_at")})
    with pytest.raises(BundleError, match="output logits: max |diff|"):
        verify_bundle(bundle)


@pytest.mark.slow  # integration-like: the CLI end to end, twice, each in a fresh interpreter
def test_cli_exit_codes(tmp_path):
    good = _cli("verify", str(demo_setup()[3]))
    assert good.returncode == 0 and "ok:" in good.stdout, good.stderr
    bundle = copy_bundle(tmp_path / "b")
    (bundle / "MODEL_CARD.md").write_text("edited")
    bad = _cli("verify", str(bundle))
    assert bad.returncode == 2 and "hash mismatch for MODEL_CARD.md" in bad.stderr
    with pytest.raises(BundleError, match="not a bundle folder"):
        verify_bundle(tmp_path / "nope")


def test_external_data_under_any_name_is_carried_and_checked(tmp_path):
    """Weights in model.onnx_data.bin (a name no glob guessed): copied into the bundle, listed, verified."""
    import json
    import shutil

    from external_data_bundle import DATA_NAME, external_data_setup

    from workbench.serving.bundle.export import write_manifest
    from workbench.serving.bundle.verify import load_manifest

    _, _, bundle, source = external_data_setup()
    manifest = load_manifest(bundle)
    rel = f"model_repository/{manifest['name']}/1/{DATA_NAME}"
    copied = bundle / rel
    assert copied.is_file() and copied.read_bytes() == (source.parent / DATA_NAME).read_bytes()
    assert rel in manifest["files"] and manifest["files"][rel]["bytes"] == (64 * 256 + 256 * 4) * 4
    report = verify_bundle(bundle)
    assert report.ok and report.outputs_checked == ["logits"] and report.max_abs_diff <= 1e-4

    # A bundle whose manifest does not carry the weights file is refused by name (not by an ORT load error).
    broken = tmp_path / "b"
    shutil.copytree(bundle, broken)
    (broken / rel).unlink()
    facts = {k: v for k, v in json.loads((broken / "manifest.json").read_text()).items()
             if k not in ("files", "format", "workbench_version", "created_at")}
    write_manifest(broken, facts)
    report = verify_bundle(broken, raise_on_error=False)
    assert not report.ok and any(f"reads external data {rel}" in p for p in report.problems), report.problems
