"""ResultsTable: one tidy row per (variant, scenario, device, batch size, sequence length), saved as measured.

Rows are appended to ``artifacts/<study>/results.jsonl`` with flush + fsync, so a crash loses at most the row
in flight. Every environment the study was measured in is kept beside them in ``environments.json`` (keyed by
``environment_id``, a hash of the machine + software), and each row names its ``environment_id``; a study written
before that has one ``environment.json`` (the machine of its last run), which is still read.

Re-running a measurement does not duplicate rows silently: :meth:`ResultsTable.saved_point` says whether a point
(variant, scenario, batch size, sequence length, output length) was already measured in this environment, so
sweeps and ``workbench measure`` skip it unless asked to redo; a row that does repeat a saved point says so
(``remeasure``: how many earlier rows it supersedes) and :meth:`ResultsTable.latest` keeps the newest of each.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Iterable

from workbench.util.files import artifacts_root, write_file_atomic
from workbench.util.numbers import format_value, is_number

ENVIRONMENTS_FILE = "environments.json"      # {environment_id: fingerprint}, every environment the study has seen
LEGACY_ENVIRONMENT_FILE = "environment.json"  # older studies: one fingerprint, overwritten by each run

# Units of the metric columns, shown on plot axes and in reports.
UNITS = {"latency_p50_ms": "ms", "latency_p90_ms": "ms", "latency_p99_ms": "ms", "throughput_per_s": "items/s",
         "tokens_per_s": "tokens/s", "size_mb": "MB", "peak_rss_mb": "MB", "cuda_max_allocated_mb": "MB",
         "usd_per_1k_requests": "$", "usd_per_1m_requests": "$", "usd_per_1m_tokens": "$", "quality": "task metric"}

# One measured point of a variant: with the environment id, what "already measured?" compares.
POINT_COLUMNS = ("variant_id", "scenario", "batch_size", "seq_len", "output_len")
# Further columns that tell two points of one scenario apart (generation arms share a variant id; a row timed with
# other thread counts is another point), used to find rows that repeat a point.
_DISTINCT_COLUMNS = ("task", "variant", "threads", "prompt_len", "max_new_tokens", "n_prompts", "drafter", "gamma",
                     "temperature", "kv_cache", "offered_rate_per_s", "serving_config")
# Rows whose speed can be compared: a Pareto front is computed within each group of these.
PARETO_GROUP = ("task", "device", "batch_size", "seq_len", "environment_id")

_THIS_ENVIRONMENT = object()


class ResultsTable:
    """Append-only table of measurement rows, optionally backed by a JSONL file.

    Args:
        path: the JSONL file rows are appended to (None: in memory only).
        rows: rows already measured.
        environment: the fingerprint of the machine rows are measured on now
            (:func:`workbench.measure.environment_fingerprint`); each appended row gets its ``environment_id`` and
            the fingerprint is added to the study's ``environments.json``.

    Example:
        >>> table = ResultsTable.for_study("demo")          # artifacts/demo/results.jsonl
        >>> table.append({"variant": "torch-fp32", "latency_p50_ms": 3.2, "quality": 0.81})
        >>> table.pareto_front()
    """

    def __init__(self, path: str | Path | None = None, rows: Iterable[dict] = (), environment: dict | None = None):
        self.path = Path(path) if path else None
        self.rows: list[dict] = list(rows)
        self.environment: dict | None = None
        self.environment_id: str | None = None
        self._environment_saved = False
        if environment:
            self.use_environment(environment)

    @classmethod
    def for_study(cls, study: str, root: str | Path | None = None,
                  environment: dict | bool | None = None) -> "ResultsTable":
        """Open (or create) ``<root>/<study>/results.jsonl``; existing rows are loaded and kept.

        Args:
            environment: the fingerprint rows appended from now on are stamped with; None (default) takes this
                machine's (:func:`workbench.measure.environment_fingerprint`), False stamps none.
        """
        folder = Path(root or artifacts_root()) / study
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.jsonl"
        table = cls.load(path) if path.exists() else cls(path)
        if environment is None:
            from workbench.measure.environment import environment_fingerprint

            environment = environment_fingerprint()
        if environment:
            table.use_environment(environment)
        return table

    @classmethod
    def load(cls, path: str | Path) -> "ResultsTable":
        path = Path(path)
        if path.is_dir():
            path = path / "results.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}: run `workbench measure` first or check the study name")
        rows = []
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # Only a crash mid-write leaves a broken line, and only as the last one.
                if number != len(lines):
                    raise ValueError(f"{path}:{number} is not valid JSON: the results file is corrupt")
        return cls(path, rows)

    # ---- environments -----------------------------------------------------------------------------------------------
    def use_environment(self, environment: dict) -> str:
        """Stamp rows appended from now on with this fingerprint's id (it is saved with the first of them)."""
        from workbench.measure.environment import environment_id

        env_id = environment.get("environment_id") or environment_id(environment)
        self.environment, self.environment_id = {**environment, "environment_id": env_id}, env_id
        self._environment_saved = False
        return env_id

    def environments(self) -> dict[str, dict]:
        """Every environment of the study, ``{environment_id: fingerprint}`` (see :func:`load_environments`)."""
        envs = load_environments(self.path.parent) if self.path else {}
        if self.environment_id and self.environment_id not in envs:
            envs[self.environment_id] = self.environment
        return envs

    def _save_environment(self) -> None:
        if self._environment_saved or not self.path or not self.environment_id:
            return
        record_environment(self.path.parent, self.environment)
        self._environment_saved = True

    # ---- rows -------------------------------------------------------------------------------------------------------
    def append(self, row: dict) -> dict:
        """Add ``row`` (stamped with the time and this table's environment id) and save it at once.

        A row that repeats a point already in the table (same variant, scenario, shape, threads and environment)
        is kept, as the newer measurement, and says so: ``remeasure`` counts the earlier rows it supersedes.
        """
        row = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **row}
        if self.environment_id and not row.get("environment_id"):
            row["environment_id"] = self.environment_id
        key = repeat_key(row)
        if key is not None and "remeasure" not in row:
            earlier = sum(1 for r in self.rows if repeat_key(r) == key)
            if earlier:
                row["remeasure"] = earlier
        self._save_environment()
        self.rows.append(row)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(row, default=_json_default) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return row

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def filter(self, **equals) -> "ResultsTable":
        return ResultsTable(None, [r for r in self.rows if all(r.get(k) == v for k, v in equals.items())])

    def latest(self) -> "ResultsTable":
        """The rows without those a later row re-measured (see :func:`latest_rows`)."""
        return ResultsTable(None, latest_rows(self.rows))

    # ---- resume -----------------------------------------------------------------------------------------------------
    def saved_point(self, variant_id: str, scenario: str, batch_size: int, seq_len: int | None = None,
                    output_len: int | None = None, *, threads: int | None = None, task=None,
                    environment_id=_THIS_ENVIRONMENT, include_unstable: bool = False) -> dict | None:
        """The newest row already measured at this point, or None: a sweep or ``workbench measure`` skips it.

        A failed point counts as measured (it would fail the same way: ``redo`` tries again); a timing its row flags
        as unstable (``stable: False``) does not, so re-running on a quieter machine replaces it.

        Args:
            variant_id / scenario / batch_size / seq_len / output_len: the point (``seq_len=None``: the task's
                default length, resolved through ``task`` when given; a point that failed before it had a length
                is found too).
            threads: only rows timed with this many intra-op threads (None: any count).
            environment_id: the environment it must have been measured in (default: this table's).
            include_unstable: count rows with an unstable timing as measured too.

        Example:
            >>> if table.saved_point(variant.id, "latency", 8, 128) is None:      # doctest: +SKIP
            ...     table.append(measure_variant(task, variant, 8, 128))
        """
        env = self.environment_id if environment_id is _THIS_ENVIRONMENT else environment_id
        seq_lens = {seq_len}
        if seq_len is None and task is not None:
            seq_lens.add(default_seq_len(task))
        for row in reversed(self.rows):
            if (row.get("variant_id") == variant_id and row.get("scenario") == scenario
                    and row.get("batch_size") == batch_size and row.get("seq_len") in seq_lens
                    and row.get("output_len") == output_len and row.get("environment_id") == env
                    and (threads is None or row.get("threads") in (None, threads))):
                return row if include_unstable or row.get("stable") is not False else None
        return None

    def has_point(self, variant_id: str, scenario: str, batch_size: int, seq_len: int | None = None,
                  output_len: int | None = None, **kwargs) -> bool:
        """Whether :meth:`saved_point` finds a row for this point."""
        return self.saved_point(variant_id, scenario, batch_size, seq_len, output_len, **kwargs) is not None

    def missing_points(self, variant_id: str, scenario: str, points: Iterable, **kwargs) -> list[tuple]:
        """The ``(batch_size, seq_len, output_len)`` points (shorter tuples or bare batch sizes allowed) not yet
        measured for ``variant_id`` in this environment, in the order given."""
        wanted = [tuple(p) if isinstance(p, (tuple, list)) else (p,) for p in points]
        return [p for p in wanted if not self.has_point(variant_id, scenario, *p, **kwargs)]

    # ---- reading ----------------------------------------------------------------------------------------------------
    def pareto_front(self, x: str = "latency_p50_ms", y: str = "quality", higher_y_is_better: bool | None = None,
                     group_by: tuple[str, ...] = PARETO_GROUP) -> list[dict]:
        """Rows not dominated on (lower ``x``, better ``y``) within each comparable group (see :func:`pareto_front`)."""
        return pareto_front(self.rows, x, y, higher_y_is_better, group_by)

    def to_text(self, columns: tuple[str, ...] = ("variant", "scenario", "batch_size", "seq_len", "quality",
                                                  "quality_ci_low", "quality_ci_high", "latency_p50_ms",
                                                  "latency_p90_ms", "latency_p99_ms", "throughput_per_s", "size_mb")) -> str:
        """Plain-text table for terminals; the quality columns are headed by the rows' metric (``accuracy``, ...)."""
        cols = [c for c in columns if any(c in r for r in self.rows)]
        metric = metric_name(self.rows)
        mixed = len({r["metric"] for r in self.rows if r.get("metric") and r.get("quality") is not None}) > 1
        if mixed and "metric" not in cols and any(c.startswith("quality") for c in cols):   # say each row's metric
            cols.insert(next(i for i, c in enumerate(cols) if c.startswith("quality")), "metric")
        heads = [c.replace("quality", metric, 1) if metric and c.startswith("quality") else c for c in cols]
        cells = [[format_value(r.get(c)) for c in cols] for r in self.rows]
        widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)


def metric_name(rows: Iterable[dict]) -> str | None:
    """The one metric the rows' ``quality`` holds (``accuracy``, ``perplexity``, ...); None when rows mix metrics
    or name none."""
    names = {r["metric"] for r in rows if r.get("metric") and r.get("quality") is not None}
    return names.pop() if len(names) == 1 else None


def default_seq_len(task) -> int | None:
    """The sequence length a task's inputs have when none is asked for (what a measured row records)."""
    try:
        inputs = task.example_inputs(1, None)
        return int(next(iter(inputs.values())).shape[1])
    except Exception:  # noqa: BLE001 - a task that cannot say just finds fewer saved points
        return None


def repeat_key(row: dict) -> tuple | None:
    """What makes two rows measurements of the same thing: the point, its distinguishing columns and the
    environment. None for rows that name no variant id or scenario (nothing to compare)."""
    if not row.get("variant_id") or not row.get("scenario"):
        return None
    return tuple(json.dumps(row.get(k), sort_keys=True, default=str)
                 for k in POINT_COLUMNS + _DISTINCT_COLUMNS + ("environment_id",))


def latest_rows(rows: Iterable[dict]) -> list[dict]:
    """``rows`` without those a later row measured again (same :func:`repeat_key`): the newest of each point."""
    rows = list(rows)
    last = {}
    for i, row in enumerate(rows):
        key = repeat_key(row)
        if key is not None:
            last[key] = i
    return [r for i, r in enumerate(rows) if (k := repeat_key(r)) is None or last[k] == i]


def pareto_front(rows: list[dict], x: str = "latency_p50_ms", y: str = "quality",
                 higher_y_is_better: bool | None = None,
                 group_by: tuple[str, ...] | None = PARETO_GROUP) -> list[dict]:
    """Non-dominated rows: lower ``x`` is better; ``y`` direction from the rows' ``higher_is_better`` flag.

    Rows are only compared within one group of ``group_by`` (default: task, device, batch size, sequence length
    and environment: a batch-8 row is not "slower" than a batch-1 row, and another machine's timing is not
    comparable). Returns each group's front, groups in order of first appearance, each sorted by ``x``.
    ``group_by=()`` or None compares every row with every other.
    """
    usable = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y)) and not r.get("failed")]
    front = []
    for group in group_rows(usable, group_by or ()).values():
        front += _front(group, x, y, higher_y_is_better)
    return front


def group_rows(rows: Iterable[dict], group_by: tuple[str, ...] = PARETO_GROUP) -> dict[tuple, list[dict]]:
    """``{(value of each group_by column): rows}``, in order of first appearance."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(_hashable(row.get(k)) for k in group_by), []).append(row)
    return groups


def _front(usable: list[dict], x: str, y: str, higher_y_is_better: bool | None) -> list[dict]:
    if not usable:
        return []
    if higher_y_is_better is None:
        higher_y_is_better = bool(usable[0].get("higher_is_better", True))
    sign = 1 if higher_y_is_better else -1
    front, best = [], -math.inf
    for row in sorted(usable, key=lambda r: (r[x], -sign * r[y])):
        if sign * row[y] > best:
            front.append(row)
            best = sign * row[y]
    return front


def load_environments(folder: str | Path) -> dict[str, dict]:
    """Every environment recorded for the study in ``folder``: ``{environment_id: fingerprint}``.

    From ``environments.json``, plus an older study's single ``environment.json`` (its fingerprint gets
    ``"legacy_file": "environment.json"``: it describes the machine of that study's last run only).
    """
    from workbench.measure.environment import environment_id

    folder = Path(folder)
    envs = {}
    path = folder / ENVIRONMENTS_FILE
    if path.exists():
        envs = json.loads(path.read_text())
    legacy = folder / LEGACY_ENVIRONMENT_FILE
    if legacy.exists():
        env = json.loads(legacy.read_text())
        env_id = env.get("environment_id") or environment_id(env)
        if env_id not in envs:
            envs[env_id] = {**env, "environment_id": env_id, "legacy_file": LEGACY_ENVIRONMENT_FILE}
    return envs


def record_environment(folder: str | Path, environment: dict) -> str:
    """Add ``environment`` to ``folder/environments.json`` (kept: every other environment already there);
    written atomically, under a lock so two runs of one study both keep theirs. Returns its id."""
    from workbench.measure.environment import environment_id

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env_id = environment.get("environment_id") or environment_id(environment)
    path = folder / ENVIRONMENTS_FILE
    with _locked(folder):
        envs = json.loads(path.read_text()) if path.exists() else {}
        if env_id not in envs:
            envs[env_id] = {**environment, "environment_id": env_id}
            write_file_atomic(path, json.dumps(envs, indent=2, default=str) + "\n")
    return env_id


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on ``folder`` (POSIX flock on the directory itself: no lock file left behind)."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):   # no flock here: the atomic rename still keeps the file whole
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
