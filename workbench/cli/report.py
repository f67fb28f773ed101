"""`workbench report STUDY`: one self-contained HTML report of a saved study (see workbench.ui.report)."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("study", help="study name under artifacts/, a study folder, or a results.jsonl file")
    p.add_argument("--out", help="HTML file to write (default: report.html beside the results)")


@command("report", "write one self-contained HTML report (figures, Pareto table, environment) of a saved study",
         _arguments)
def cmd_report(args) -> int:
    from workbench.ui.report import build_report
    from workbench.util.files import sha256

    path = build_report(args.study, args.out)
    print(f"wrote {path} (sha256 {sha256(path)})")
    return 0
