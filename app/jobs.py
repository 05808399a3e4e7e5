"""The one background mechanism: periodic jobs per worker and cluster-wide jobs under a DB lease.

Worker jobs run in every worker: cache sync, buffer flushes, and outbox delivery, which is safe in
parallel because each worker claims its rows with `SELECT … FOR UPDATE SKIP LOCKED`
(app/notify/delivery.py). Cluster jobs (no-show marking, housekeeping) run in exactly one worker at a
time: a worker takes a job's lease with a conditional UPDATE, which the database serialises on SQLite
and PostgreSQL alike. The lease is short (LEASE_SECONDS) and its holder renews it every LEASE_TICK
seconds, whatever the job's period: when the holder's host dies, another worker takes over within
LEASE_SECONDS, and runs the job when it is due by the time it last ran (kept beside the lease), so the
period holds across owners.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter
from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.models import Model

from app import clock

log = logging.getLogger("app.jobs")
# Summed over a cluster's instances, a cluster job's count shows it ran once per period, not once per worker.
JOB_RUNS = Counter("app_job_runs", "Ticks of a cluster-wide job that ran here (under its lease)", ["job"])


class JobLease(Model):
    """Who runs a cluster-wide job, until when."""

    name = fields.CharField(max_length=64, primary_key=True)
    owner = fields.CharField(max_length=64, default="")
    until = fields.DatetimeField()
    last_run = fields.DatetimeField(null=True)  # when a run last started, by whichever owner

    class Meta:
        table = "job_lease"


async def take_lease(name: str, owner: str, seconds: float) -> bool:
    """Take or renew a job's lease; True when this owner holds it now."""
    now = clock.now()
    until = now + dt.timedelta(seconds=seconds)
    taken = await JobLease.filter(Q(name=name) & (Q(until__lt=now) | Q(owner=owner))).update(owner=owner, until=until)
    if taken:
        return True
    try:
        await JobLease.create(name=name, owner=owner, until=until)
        return True
    except IntegrityError:
        return False


LEASE_SECONDS = 15.0  # how long a lease outlives its holder's last renewal: the longest a dead host holds a job
LEASE_TICK = 5.0  # how often the holder renews (and others try): well inside LEASE_SECONDS


async def claim_run(name: str, owner: str, every: float) -> bool:
    """Start a run of a cluster job when it is due (`every` seconds after the last run); True when this owner may.

    One conditional UPDATE: only the lease's holder, and only once per period even if two owners overlapped.
    """
    now = clock.now()
    due = Q(last_run__isnull=True) | Q(last_run__lte=now - dt.timedelta(seconds=every))
    return bool(await JobLease.filter(Q(name=name) & Q(owner=owner) & due).update(last_run=now))


@dataclass
class Job:
    """A periodic coroutine; `cluster=True` means one worker at a time runs it.

    `failures` counts the ticks that failed in a row (0 after a good one), `failing_since` when the
    run of failures began and `last_error` its latest error's type: what /readyz reports.
    """

    name: str
    every: float
    func: Callable[[], Awaitable[None]]
    cluster: bool = False
    failures: int = 0
    failing_since: dt.datetime | None = None
    last_error: str = ""
    ran_at: float | None = None  # a cluster job: when this worker last started it (monotonic)


FAILING_AFTER = 3  # ticks in a row: a job failing this long makes the worker degraded


class Scheduler:
    """Runs registered jobs as tasks of this worker; stops them cleanly."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def add(self, name: str, every: float, func: Callable[[], Awaitable[None]], *, cluster: bool = False) -> None:
        """Register a job before start."""
        self.jobs.append(Job(name, every, func, cluster))

    def start(self) -> None:
        """Start one task per job."""
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]

    async def stop(self) -> None:
        """Stop the loops, letting a running tick finish."""
        self._stopping.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        self._tasks = []

    async def run_once(self, name: str) -> None:
        """Run one job now (tests and CLI)."""
        job = next(j for j in self.jobs if j.name == name)
        await job.func()

    def failing(self) -> dict[str, Job]:
        """The jobs that failed FAILING_AFTER ticks or more in a row, by name."""
        return {j.name: j for j in self.jobs if j.failures >= FAILING_AFTER}

    async def tick(self, job: Job) -> None:
        """Run one tick of a job and keep its record; the log speaks once per change of state."""
        try:
            if not job.cluster:
                await job.func()
            elif (
                await take_lease(job.name, self.owner, LEASE_SECONDS)
                # This worker's own clock too: it never runs a job twice within a period, whatever the shared
                # time says (a clock stepped forward, a test's fake clock).
                and (job.ran_at is None or time.monotonic() - job.ran_at >= job.every)
                and await claim_run(job.name, self.owner, job.every)
            ):
                job.ran_at = time.monotonic()
                JOB_RUNS.labels(job.name).inc()  # a run started (a failing one counts: it waits a period too)
                await job.func()
        except Exception as exc:
            job.failures += 1
            job.last_error = type(exc).__name__
            if job.failures == 1:
                job.failing_since = clock.now()
                log.exception("job %s failed (logged once until it recovers)", job.name)
            elif job.failures == FAILING_AFTER:
                log.error("job %s is failing: %d ticks in a row (%s)", job.name, job.failures, job.last_error)
            return
        if job.failures:
            log.warning("job %s recovered after %d failed ticks", job.name, job.failures)
        job.failures, job.failing_since, job.last_error = 0, None, ""

    async def _loop(self, job: Job) -> None:
        # A cluster job ticks at least every LEASE_TICK: its holder renews the lease, the others stand by.
        period = min(job.every, LEASE_TICK) if job.cluster else job.every
        while not self._stopping.is_set():
            await self.tick(job)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=period)
