#!/usr/bin/env bash
# GPU check of the LLM generation path (<= 8 minutes on one GPU): writes OUT_DIR/gpu_check.json.
#   scripts/gpu_check.sh OUT_DIR          on the GPU machine
#   scripts/gpu_check.sh --cpu OUT_DIR    tiny shapes on CPU, well under a minute (the script's own test)
# Python: $PYTHON, else the repo's .venv, else python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -lt 1 ]]; then
    echo "usage: scripts/gpu_check.sh [--cpu] OUT_DIR" >&2
    exit 2
fi
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/scripts/gpu_check.py" "$@"
