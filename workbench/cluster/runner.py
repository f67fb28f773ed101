"""Run a study: here, one job after another, or on a Ray cluster, one job at a time per node.

Both paths plan the same jobs (:func:`workbench.cluster.jobs.plan_jobs`), skip those already in the study's table
(same variant id, point, instance and environment) unless ``redo``, run :func:`~workbench.cluster.jobs.run_job`
and append each row on the driver the moment it arrives (flushed and fsynced by the ResultsTable), so an
interrupted study loses no finished row and resumes where it stopped.

On Ray every job asks for the custom resource ``timing_slot`` (each node offers exactly 1, checked per node in
``ray.nodes()`` before anything runs), so two measurements never share a machine's cores or GPU, plus a small share
of its target's resources (``instance:c7i.large``, ``gpu:h100``, ...) so it lands on that hardware, ``num_gpus`` for
GPU targets, and the CPUs of its target's nodes (``num_cpus``): Ray sets ``OMP_NUM_THREADS`` to what a task asked
for, so a job that asked for none would run single-threaded while a local run uses every core. Each row records
the threads that ran. A worker that dies mid-job is retried once by Ray on a node with the same resources; a second
death is recorded as a failed row. Every wait on Ray has a timeout whose error names what is stuck.
"""
from __future__ import annotations

from typing import Callable

from tqdm.auto import tqdm

from workbench.cluster.jobs import LOCAL, Job, plan_jobs, row_key, run_job
from workbench.cluster.spec import SpecError, StudySpec, Target

TIMING_SLOT = "timing_slot"
LABEL_SHARE = 1e-3  # a job takes this much of its target's label resource: it selects the node, never fills it
PROBE_TIMEOUT_S = 300.0     # the environment probe of a target: a node must take it within this
STUCK_TIMEOUT_S = 1800.0    # no job finished for this long: say which are pending and stop
BUILTIN = ("CPU", "GPU", "memory", "object_store_memory")


def run_study(spec: StudySpec, ray_address: str | None = None, redo: bool = False, root=None,
              measure_fn: Callable[[StudySpec, Job], dict] = run_job, progress: bool = True,
              stuck_timeout_s: float = STUCK_TIMEOUT_S):
    """Measure every job of ``spec`` not yet in ``artifacts/<study>/results.jsonl``; return the ResultsTable.

    Args:
        ray_address: a running Ray cluster ("auto", "ray://host:10001", "host:6379"); None runs here, pricing
            this machine as ``spec.local_instance``.
        redo: measure points again even when the table already holds them.
        measure_fn: the job function (tests wrap it to inject faults).
        stuck_timeout_s: on Ray, stop with an error naming the pending jobs when none finished for this long (the
            rows done are saved).

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
    return _run_ray(spec, task_name, table, ray_address, redo, measure_fn, progress, stuck_timeout_s)


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


def _labels(resources: dict) -> list[str]:
    return sorted(k for k in resources if k not in BUILTIN and k != TIMING_SLOT and not k.startswith("node:")
                  and not k.startswith("accelerator_type:"))


def check_nodes(nodes: list[dict]) -> None:
    """One measurement per node, checked node by node (``ray.nodes()``): every alive node that offers a timing slot
    offers exactly 1, every node carrying a hardware label offers one, and a ``gpu:*`` label needs a GPU. An error
    naming the node and the fix, before anything runs."""
    problems = []
    for node in nodes:
        if not node.get("Alive", node.get("alive", True)):
            continue
        res = node.get("Resources") or {}
        name = f"{node.get('NodeManagerAddress', '?')} ({str(node.get('NodeID', '?'))[:12]})"
        slot, labels = res.get(TIMING_SLOT), _labels(res)
        if slot is not None and slot != 1:
            problems.append(f"node {name} offers {TIMING_SLOT}={slot:g}: two measurements could share its cores; "
                            f"start it with --resources='{{\"{TIMING_SLOT}\": 1, ...}}'")
        elif labels and slot is None:
            problems.append(f"node {name} carries {labels} but no {TIMING_SLOT}: its jobs could not be placed one "
                            f"at a time; add \"{TIMING_SLOT}\": 1 to its --resources")
        if any(k.startswith("gpu:") for k in labels) and res.get("GPU", 0) < 1:
            problems.append(f"node {name} is labelled {[k for k in labels if k.startswith('gpu:')]} but Ray sees no "
                            "GPU there: start it with --num-gpus, or drop the label")
    if problems:
        raise SpecError("the cluster cannot keep one measurement per node: " + "; ".join(problems))


def target_cpus(target: Target, nodes: list[dict]) -> int:
    """CPUs a job of ``target`` asks for: the fewest any of its nodes offers (a job fits on every one of them and,
    holding the node's timing slot, has its whole width)."""
    counts = [int((n.get("Resources") or {}).get("CPU", 0)) for n in nodes if n.get("Alive", n.get("alive", True))
              and all((n.get("Resources") or {}).get(k, 0) > 0 for k, _ in target.resources)
              and (n.get("Resources") or {}).get(TIMING_SLOT, 0) >= 1]
    return max(1, min(counts)) if counts else 1


def check_targets(targets: tuple[Target, ...], resources: dict[str, float]) -> None:
    """Every target's resources and the timing slot exist in the cluster; else an error naming what it has."""
    labels = _labels(resources)
    if resources.get(TIMING_SLOT, 0) < 1:
        raise SpecError(f"no node offers the {TIMING_SLOT!r} resource: start each node with "
                        f"--resources='{{\"{TIMING_SLOT}\": 1}}' (one measurement at a time); the cluster has {labels}")
    for target in targets:
        missing = [k for k, _ in target.resources if resources.get(k, 0) <= 0]
        if target.gpus and resources.get("GPU", 0) < target.gpus:
            missing.append(f"GPU x{target.gpus:g}")
        if missing:
            raise SpecError(f"no node offers target {target.name!r} ({missing}): the cluster's labels are {labels}")


def _options(target: Target, cpus: int) -> dict:
    resources = {TIMING_SLOT: 1.0, **{k: LABEL_SHARE for k, _ in target.resources}}
    # num_cpus = the node's CPUs: the timing slot gives the job the whole node, and Ray sets OMP_NUM_THREADS to
    # num_cpus (0 would mean one thread); max_retries=1: one retry after a worker dies
    return {"resources": resources, "num_cpus": cpus, "num_gpus": target.gpus, "max_retries": 1,
            "retry_exceptions": False}


def _probe_environment() -> dict:
    from workbench.measure.environment import environment_fingerprint, environment_id

    env = environment_fingerprint()
    return {"environment_id": environment_id(env), "environment": env}


def _describe(job: Job) -> str:
    return f"{job.variant} batch {job.batch_size} on {job.target.name}"


def _run_ray(spec, task_name, table, address, redo, measure_fn, progress, stuck_timeout_s=STUCK_TIMEOUT_S):
    ray = connect(address)
    check_targets(spec.targets, ray.cluster_resources())  # before anything runs
    nodes = ray.nodes()
    check_nodes(nodes)
    cpus = {t.name: target_cpus(t, nodes) for t in spec.targets}
    probe = ray.remote(_probe_environment)
    # Which environment each target's nodes are (one probe per target), so saved points are recognised.
    envs = {}
    for t in spec.targets:
        ref = probe.options(**_options(t, cpus[t.name])).remote()
        try:
            envs[t.name] = ray.get(ref, timeout=PROBE_TIMEOUT_S)["environment_id"]
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            raise RuntimeError(f"the environment probe of target {t.name!r} was not placed or did not answer in "
                               f"{PROBE_TIMEOUT_S:.0f}s: no free node offers {TIMING_SLOT} + {dict(t.resources)} + "
                               f"{cpus[t.name]} CPUs (is its node busy with another study, or gone?)") from None
    jobs = _todo(plan_jobs(spec, task_name, spec.targets), table, envs, redo)
    remote = ray.remote(measure_fn)
    pending = {remote.options(**_options(j.target, cpus[j.target.name])).remote(spec, j): j for j in jobs}
    with tqdm(total=len(pending), desc=f"study {spec.study} on Ray", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=stuck_timeout_s)
            if not ready:
                stuck = [_describe(j) for j in pending.values()]
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise RuntimeError(f"no job finished in {stuck_timeout_s:.0f}s; {len(stuck)} pending, e.g. "
                                   f"{stuck[:5]}: a node may be gone or a job hung. The rows done are in "
                                   f"{table.path}; run again to resume")
            job = pending.pop(ready[0])
            try:
                row = ray.get(ready[0], timeout=60)
            except Exception as exc:  # the worker died twice (Ray retried once): record it, keep going
                row = {"variant_id": job.variant_id, "variant": job.variant, "variant_name": job.variant,
                       "failed": True, "error": f"{type(exc).__name__} (after one retry): {exc}"[:500],
                       "study": spec.study, "scenario": "latency",
                       "target": job.target.name, "instance": job.instance, "batch_size": job.batch_size,
                       "requested_seq_len": job.seq_len, "environment_id": envs.get(job.target.name)}
            _save(table, row)
            bar.update()
    return table


__all__ = ["run_study", "connect", "check_targets", "check_nodes", "target_cpus", "TIMING_SLOT"]
