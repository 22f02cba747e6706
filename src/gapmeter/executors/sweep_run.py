"""Running a sweep's jobs: one after another here, or each as a Ray task with its resources.

Every job is an ordinary ``engine.evaluate`` run writing to the sweep's one store, so a job that
is complete recomputes nothing (its responses are in the cache) and a killed sweep resumes where
it was. On Ray the store must be reachable from every node: a SQLite file on one machine (the
local cluster of the tests), or a PostgreSQL URL (``db:``) on a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gapmeter.engine.evaluate import evaluate
from gapmeter.errors import GapmeterError
from gapmeter.executors.sweep_config import Job, SweepFile
from gapmeter.spec import RunSpec
from gapmeter.store.db import open_store, resolve_db_url


@dataclass(frozen=True)
class JobResult:
    label: str
    run_id: str
    computed_requests: int
    cached_requests: int


def run_job(spec: RunSpec) -> tuple[str, int, int]:
    """One job (also the body of its Ray task): run id, requests computed, requests cached."""
    outcome = evaluate(spec)
    return outcome.run_id, outcome.computed_requests, outcome.cached_requests


def run_jobs(sweep: SweepFile, jobs: list[Job], *, executor: str,
             on_result: Callable[[JobResult], None] = lambda _: None) -> list[JobResult]:
    # The store is created (or upgraded) once, here, before jobs open it side by side.
    open_store(resolve_db_url(jobs[0].spec.db, jobs[0].spec.output_path))
    if executor == "local":
        results = []
        for job in jobs:
            result = JobResult(job.label, *run_job(job.spec))
            on_result(result)
            results.append(result)
        return results
    return _run_on_ray(sweep, jobs, on_result)


def _run_on_ray(sweep: SweepFile, jobs: list[Job], on_result: Callable[[JobResult], None]) -> list[JobResult]:
    from gapmeter.executors.ray_import import connect, import_ray

    ray = import_ray()
    connected = connect(sweep.ray.address)
    try:
        task = ray.remote(run_job).options(num_cpus=sweep.ray.num_cpus_per_job,
                                            num_gpus=sweep.ray.num_gpus_per_job, max_retries=2)
        pending = {task.remote(job.spec): job for job in jobs}
        done: dict[str, JobResult] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                result = JobResult(job.label, *ray.get(ready[0]))
            except ray.exceptions.RayTaskError as err:
                cause = err.cause if isinstance(getattr(err, "cause", None), GapmeterError) else None
                raise GapmeterError(f"sweep job {job.label}: {cause or str(err).strip().splitlines()[-1]}; "
                                    "finished jobs are stored: run the sweep again to resume") from None
            done[job.label] = result
            on_result(result)
        return [done[j.label] for j in jobs]
    finally:
        if connected:
            ray.shutdown()
