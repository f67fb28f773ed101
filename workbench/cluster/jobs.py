"""A study as jobs: one job = one variant at one point on one hardware target, measured by :func:`run_job`.

``run_job`` is the whole unit of work, the same function locally and on a Ray worker: it rebuilds the variant from
its recipe (the lineage id is checked, so every node measures the same recipe), measures the point with the same
``measure_variant`` the CLI uses, and returns one results row stamped with where and when it ran. Nothing else
travels: each node writes its own ONNX files. Under ``shared_path`` (storage every node sees) a node builds under its
own folder, ``<shared_path>/nodes/<node id>``, so two nodes building the same recipe never write the same files (a
step publishes by swapping its folder into place: a second node's swap could pull a file from under the first
node's running measurement); the paths a row names then exist on every node. Without ``shared_path`` a row's
``artifact`` exists only on the node that built it: it is left out (``artifact_node`` says where it was).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass

from workbench.cluster.spec import StudySpec, Target

LOCAL = Target(name="local", instance="")  # the instance comes from spec.local_instance

_TASKS: dict = {}      # per worker process: built once, reused by every job that lands there
_VARIANTS: dict = {}


@dataclass(frozen=True)
class Job:
    """What to measure: ``variant`` (its name in the spec, its recipe and expected id) at one point on ``target``."""

    variant: str
    recipe: tuple
    variant_id: str
    batch_size: int
    seq_len: int | None
    target: Target
    instance: str
    quality: bool        # evaluate the metric (once per variant and target: it does not depend on the batch)

    def key(self, environment_id: str | None) -> tuple:
        """Identity of the measured point, as :func:`row_key` reads it back from a row."""
        return (self.variant_id, self.batch_size, self.seq_len, self.instance, environment_id)


def row_key(row: dict) -> tuple:
    return (row.get("variant_id"), row.get("batch_size"), row.get("requested_seq_len"), row.get("instance"),
            row.get("environment_id"))


def expected_variant_id(task_name: str, recipe: tuple, device: str) -> str:
    """The id ``apply`` will give this recipe on this task and device (ids are hash chains of step configs)."""
    from workbench.core import lineage_id

    variant_id = lineage_id(f"{task_name}:torch:{device}:fp32", "baseline", {})
    for step, config in recipe:
        variant_id = lineage_id(variant_id, step, config)
    return variant_id


def plan_jobs(spec: StudySpec, task_name: str, targets: tuple[Target, ...]) -> list[Job]:
    """Every (target, variant, batch size) of the spec, in the order a person reads the table."""
    jobs = []
    for target in targets:
        instance = target.instance or spec.local_instance
        for name, recipe in spec.variants:
            vid = expected_variant_id(task_name, recipe, target.device)
            for i, batch in enumerate(spec.batch_sizes):
                jobs.append(Job(name, recipe, vid, batch, spec.seq_len, target, instance, quality=i == 0))
    return jobs


def _task(spec: StudySpec):
    from workbench.tasks import get_task

    key = (spec.task, spec.model, spec.data)
    if key not in _TASKS:
        _TASKS[key] = get_task(spec.task, spec.model, spec.data)
    return _TASKS[key]


def _variant(spec: StudySpec, job: Job):
    """The job's variant, built once per process; a recipe that gives another id than planned is an error."""
    import workbench.steps as steps
    from workbench.core import apply, config_from_dict

    key = (spec.task, spec.model, spec.data, job.target.device, json.dumps(job.recipe, sort_keys=True))
    if key not in _VARIANTS:
        steps.discover()
        variant = _task(spec).baseline(job.target.device, "fp32")
        for _step, config in job.recipe:
            variant = apply(variant, config_from_dict(config))
        if variant.id != job.variant_id:
            raise RuntimeError(f"variant {job.variant!r} built as id {variant.id}, planned {job.variant_id}: the node "
                               "has another model or workbench version than the driver")
        _VARIANTS[key] = variant
    return _VARIANTS[key]


def node_id() -> str:
    """A stable id of this machine in the cluster: the Ray node id on Ray, else the host name."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()[:12]
    return platform.node()


def node_name() -> str:
    """Which machine ran a job: the Ray node id when on Ray, else the host name."""
    ray = sys.modules.get("ray")  # a Ray worker has it imported; a local run need not pay for importing it
    if ray is not None and ray.is_initialized():
        return f"{platform.node()}/{ray.get_runtime_context().get_node_id()[:12]}"
    return platform.node()


def run_job(spec: StudySpec, job: Job) -> dict:
    """Measure one job here; return its row (a failure is a row with ``failed`` and the reason, never lost)."""
    from workbench.measure import measure_variant
    from workbench.measure.environment import environment_fingerprint, environment_id

    if spec.shared_path:   # a folder of this node's own: two nodes never build into the same files
        os.environ["WORKBENCH_ARTIFACTS"] = os.path.join(spec.shared_path, "nodes", node_id())
    env = environment_fingerprint()
    started = time.time()
    identity = {"study": spec.study, "scenario": "latency", "variant_name": job.variant, "target": job.target.name,
                "instance": job.instance, "requested_seq_len": job.seq_len, "batch_size": job.batch_size,
                "environment_id": environment_id(env), "node": node_name()}
    try:
        row = measure_variant(_task(spec), _variant(spec, job), job.batch_size, job.seq_len, quality=job.quality,
                              eval_limit=spec.eval_limit, threads=spec.threads, max_seconds=spec.time_budget_s)
    except Exception as exc:  # a point that cannot run is a row that says why; the study goes on
        row = {"variant_id": job.variant_id, "variant": job.variant, "failed": True,
               "error": f"{type(exc).__name__}: {exc}"}
    if row.get("artifact") and not spec.shared_path and _on_ray():   # a path on this node only: not in the row
        row = {**row, "artifact": None, "artifact_node": identity["node"]}
    return {**row, **identity, "started_at": started, "ended_at": time.time(), "environment": env}


def _on_ray() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


__all__ = ["Job", "plan_jobs", "run_job", "row_key", "expected_variant_id", "LOCAL"]
