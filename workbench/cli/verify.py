"""`workbench verify BUNDLE`: re-hash every file, check config.pbtxt, rerun the ONNX model on the reference inputs."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder written by `workbench export`")
    p.add_argument("--threads", type=int, default=None)


@command("verify", "check a serving bundle: hashes, Triton config schema, ONNX outputs on reference inputs", _arguments)
def cmd_verify(args) -> int:
    from workbench.serving.bundle.verify import verify_bundle

    report = verify_bundle(args.bundle, threads=args.threads)  # raises BundleError (exit 2) on any mismatch
    print(f"ok: {report.files_checked} files match their sha256; outputs {report.outputs_checked} match the "
          f"reference (max |diff| {report.max_abs_diff:.3g}); bundle {report.bundle}")
    return 0
