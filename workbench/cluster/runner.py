"""Run a study: here, one job after another, or on a Ray cluster, one job at a time per node.

Both paths plan the same jobs (:func:`workbench.cluster.jobs.plan_jobs`), skip those already in the study's table
(same variant id, point, instance and environment) unless ``redo``, run :func:`~workbench.cluster.jobs.run_job`
and append each row on the driver the moment it arrives (flushed and fsynced by the ResultsTable), so an
interrupted study loses no finished row and resumes where it stopped.

On Ray every job asks for the custom resource ``timing_slot`` (each node offers exactly 1), so two measurements
never share a machine's cores or GPU, plus a small share of its target's resources (``instance:c7i.large``,
``gpu:h100``, ...) so it lands on that hardware, and ``num_gpus`` for GPU targets. A worker that dies mid-job is
retried once by Ray on a node with the same resources; a second death is recorded as a failed row.
"""
from __future__ import annotations

from typing import Callable

from tqdm.auto import tqdm

from workbench.cluster.jobs import LOCAL, Job, plan_jobs, row_key, run_job
from workbench.cluster.spec import SpecError, StudySpec, Target

TIMING_SLOT = "timing_slot"
LABEL_SHARE = 1e-3  # a job takes this much of its target's label resource: it selects the node, never fills it


def run_study(spec: StudySpec, ray_address: str | None = None, redo: bool = False, root=None,
              measure_fn: Callable[[StudySpec, Job], dict] = run_job, progress: bool = True):
    """Measure every job of ``spec`` not yet in ``artifacts/<study>/results.jsonl``; return the ResultsTable.

    Args:
        ray_address: a running Ray cluster ("auto", "ray://host:10001", "host:6379"); None runs here, pricing
            this machine as ``spec.local_instance``.
        redo: measure points again even when the table already holds them.
        measure_fn: the job function (tests wrap it to inject faults).

    Example:
        >>> table = run_study(load_spec("study.yaml"), ray_address="auto")      # doctest: +SKIP
    """
    from workbench.results import ResultsTable
    from workbench.tasks import get_task

    if ray_address is not None and not spec.targets:
        raise SpecError("a Ray study needs targets: name the hardware each point runs on (see cluster/spec.py)")
    task_name = get_task(spec.task, spec.model, spec.data).name  # a bad model/data path fails here, before any job
    table = ResultsTable.for_study(spec.study, root=root, environment=False)  # rows bring their node's environment
    if ray_address is None:
        return _run_local(spec, plan_jobs(spec, task_name, (LOCAL,)), table, redo, measure_fn, progress)
    return _run_ray(spec, task_name, table, ray_address, redo, measure_fn, progress)


def _todo(jobs: list[Job], table, environments: dict[str, str | None], redo: bool) -> list[Job]:
    """Jobs whose point is not in the table yet for the environment of the target they run on."""
    if redo:
        return jobs
    done = {row_key(r) for r in table.rows if not r.get("failed")}
    return [j for j in jobs if j.key(environments.get(j.target.name)) not in done]


def _save(table, row: dict) -> dict:
    from workbench.results import record_environment

    env = row.pop("environment", None)
    if env and table.path:
        record_environment(table.path.parent, {**env, "environment_id": row["environment_id"]})
    return table.append(row)


def _run_local(spec, jobs, table, redo, measure_fn, progress):
    from workbench.measure.environment import environment_fingerprint, environment_id

    todo = _todo(jobs, table, {LOCAL.name: environment_id(environment_fingerprint())}, redo)
    for job in tqdm(todo, desc=f"study {spec.study}", disable=not progress):
        _save(table, measure_fn(spec, job))
    return table


def _reachable(address: str, timeout: float = 3.0) -> bool:
    """Whether something listens at a ``host:port`` / ``ray://host:port`` address (Ray itself would retry for
    minutes before giving up on a wrong one). Other forms ("auto") are left to Ray, which fails fast for them."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def connect(address: str):
    """Connect to an existing Ray cluster, or a clear error (nothing is started here)."""
    import ray

    if ray.is_initialized():
        return ray
    if not _reachable(address):
        raise RuntimeError(f"no Ray cluster at {address!r}: nothing answers there. Start one with `ray start --head "
                           "--resources='{\"timing_slot\": 1}'` and pass the address it prints")
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RuntimeError(f"no Ray cluster at {address!r} ({type(exc).__name__}: {exc}): start one with "
                           "`ray start --head --resources='{\"timing_slot\": 1, ...}'` and pass its address") from exc
    return ray


def check_targets(targets: tuple[Target, ...], resources: dict[str, float]) -> None:
    """Every target's resources and the timing slot exist in the cluster; else an error naming what it has."""
    labels = sorted(k for k in resources if k not in ("CPU", "GPU", "memory", "object_store_memory")
                    and not k.startswith("node:") and not k.startswith("accelerator_type:"))
    if resources.get(TIMING_SLOT, 0) < 1:
        raise SpecError(f"no node offers the {TIMING_SLOT!r} resource: start each node with "
                        f"--resources='{{\"{TIMING_SLOT}\": 1}}' (one measurement at a time); the cluster has {labels}")
    for target in targets:
        missing = [k for k, _ in target.resources if resources.get(k, 0) <= 0]
        if target.gpus and resources.get("GPU", 0) < target.gpus:
            missing.append(f"GPU x{target.gpus:g}")
        if missing:
            raise SpecError(f"no node offers target {target.name!r} ({missing}): the cluster's labels are {labels}")


def _options(target: Target) -> dict:
    resources = {TIMING_SLOT: 1.0, **{k: LABEL_SHARE for k, _ in target.resources}}
    # num_cpus=0: the timing slot already gives the job the whole node; max_retries=1: one retry after a worker dies
    return {"resources": resources, "num_cpus": 0, "num_gpus": target.gpus, "max_retries": 1,
            "retry_exceptions": False}


def _probe_environment() -> dict:
    from workbench.measure.environment import environment_fingerprint, environment_id

    env = environment_fingerprint()
    return {"environment_id": environment_id(env), "environment": env}


def _run_ray(spec, task_name, table, address, redo, measure_fn, progress):
    ray = connect(address)
    check_targets(spec.targets, ray.cluster_resources())  # before anything runs
    probe = ray.remote(_probe_environment)
    # Which environment each target's nodes are (one probe per target), so saved points are recognised.
    envs = {t.name: ray.get(probe.options(**_options(t)).remote())["environment_id"] for t in spec.targets}
    jobs = _todo(plan_jobs(spec, task_name, spec.targets), table, envs, redo)
    remote = ray.remote(measure_fn)
    pending = {remote.options(**_options(j.target)).remote(spec, j): j for j in jobs}
    with tqdm(total=len(pending), desc=f"study {spec.study} on Ray", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except Exception as exc:  # the worker died twice (Ray retried once): record it, keep going
                row = {"variant_id": job.variant_id, "variant": job.variant, "variant_name": job.variant,
                       "failed": True, "error": f"{type(exc).__name__} (after one retry): {exc}"[:500],
                       "study": spec.study, "scenario": "latency",
                       "target": job.target.name, "instance": job.instance, "batch_size": job.batch_size,
                       "requested_seq_len": job.seq_len, "environment_id": envs.get(job.target.name)}
            _save(table, row)
            bar.update()
    return table


__all__ = ["run_study", "connect", "check_targets", "TIMING_SLOT"]
