"""Cluster-wide job leases: one owner at a time, taken over after expiry, renewed by the owner."""

from __future__ import annotations

import asyncio
import datetime as dt

from app.jobs import LEASE_SECONDS, JobLease, Scheduler, claim_run, take_lease


async def test_first_owner_takes_the_lease(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30) is True
    lease = await JobLease.get(name="no-shows")
    assert lease.owner == "worker-a"
    assert lease.until == fake_clock.current + dt.timedelta(seconds=30)


async def test_second_owner_is_refused_while_the_lease_is_valid(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30)
    assert await take_lease("no-shows", "worker-b", 30) is False
    fake_clock.advance(seconds=29)
    assert await take_lease("no-shows", "worker-b", 30) is False
    lease = await JobLease.get(name="no-shows")
    assert lease.owner == "worker-a"
    assert await JobLease.all().count() == 1


async def test_lease_is_taken_over_after_expiry(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30)
    fake_clock.advance(seconds=31)
    assert await take_lease("no-shows", "worker-b", 30) is True
    lease = await JobLease.get(name="no-shows")
    assert lease.owner == "worker-b"
    assert lease.until == fake_clock.current + dt.timedelta(seconds=30)
    # and now the old owner is the one refused
    assert await take_lease("no-shows", "worker-a", 30) is False


async def test_lease_is_held_until_its_end_and_free_right_after(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30)
    fake_clock.advance(seconds=30)
    assert await take_lease("no-shows", "worker-b", 30) is False  # until == now: still held
    fake_clock.advance(milliseconds=1)
    assert await take_lease("no-shows", "worker-b", 30) is True


async def test_owner_renews(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30)
    fake_clock.advance(seconds=20)
    assert await take_lease("no-shows", "worker-a", 30) is True
    lease = await JobLease.get(name="no-shows")
    assert lease.until == fake_clock.current + dt.timedelta(seconds=30)
    # renewed: another owner is still refused after the first lease would have ended
    fake_clock.advance(seconds=20)
    assert await take_lease("no-shows", "worker-b", 30) is False
    # an owner may also renew after its lease ran out, if nobody took it
    fake_clock.advance(seconds=60)
    assert await take_lease("no-shows", "worker-a", 30) is True
    assert (await JobLease.get(name="no-shows")).owner == "worker-a"


async def test_leases_of_different_jobs_are_independent(fake_clock):
    assert await take_lease("no-shows", "worker-a", 30)
    assert await take_lease("housekeeping", "worker-b", 30)
    assert await take_lease("no-shows", "worker-b", 30) is False
    assert await take_lease("housekeeping", "worker-a", 30) is False
    assert sorted(await JobLease.all().values_list("name", "owner")) == [
        ("housekeeping", "worker-b"),
        ("no-shows", "worker-a"),
    ]


# ---------------------------------------------------------------- the per-worker scheduler


async def test_scheduler_runs_jobs_periodically_and_stops_cleanly():
    ticks: list[str] = []

    async def tick() -> None:
        ticks.append("tick")

    scheduler = Scheduler()
    scheduler.add("cache-sync", 0.01, tick)
    scheduler.start()
    for _ in range(200):
        if len(ticks) >= 3:
            break
        await asyncio.sleep(0.01)
    await scheduler.stop()
    assert len(ticks) >= 3
    stopped_at = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == stopped_at  # nothing runs after stop


async def test_a_failing_job_keeps_running_and_does_not_stop_the_others():
    calls = {"bad": 0, "good": 0}

    async def bad() -> None:
        calls["bad"] += 1
        raise RuntimeError("boom")

    async def good() -> None:
        calls["good"] += 1

    scheduler = Scheduler()
    scheduler.add("bad", 0.01, bad)
    scheduler.add("good", 0.01, good)
    scheduler.start()
    for _ in range(200):
        if calls["bad"] >= 2 and calls["good"] >= 2:
            break
        await asyncio.sleep(0.01)
    await scheduler.stop()
    assert calls["bad"] >= 2 and calls["good"] >= 2


async def test_run_once_runs_a_job_by_name():
    seen = []

    async def job() -> None:
        seen.append(1)

    scheduler = Scheduler()
    scheduler.add("cache-sync", 60, job)
    await scheduler.run_once("cache-sync")
    assert seen == [1]


async def test_a_cluster_job_runs_in_one_worker_only():
    runs = {"a": 0, "b": 0}

    def counter(name: str):
        async def job() -> None:
            runs[name] += 1

        return job

    a, b = Scheduler(), Scheduler()
    a.add("no-shows", 0.01, counter("a"), cluster=True)
    a.start()
    for _ in range(200):
        if runs["a"]:
            break
        await asyncio.sleep(0.01)
    b.add("no-shows", 0.01, counter("b"), cluster=True)
    b.start()
    await asyncio.sleep(0.1)
    await a.stop()
    await b.stop()
    assert runs["a"] >= 1
    assert runs["b"] == 0  # a holds the lease and keeps renewing it
    assert (await JobLease.get(name="no-shows")).owner == a.owner


async def test_a_run_is_claimed_by_the_holder_once_per_period(fake_clock):
    assert await take_lease("housekeeping", "worker-a", LEASE_SECONDS)
    assert await claim_run("housekeeping", "worker-b", 3600) is False  # not the holder
    assert await claim_run("housekeeping", "worker-a", 3600) is True
    fake_clock.advance(seconds=3599)
    assert await claim_run("housekeeping", "worker-a", 3600) is False  # not due yet
    fake_clock.advance(seconds=1)
    assert await claim_run("housekeeping", "worker-a", 3600) is True
    assert (await JobLease.get(name="housekeeping")).last_run == fake_clock.current


async def test_a_dead_holders_job_is_taken_over_within_the_lease_and_keeps_its_period(fake_clock):
    """The way it was found: the lease lasted three periods, so an hourly job stopped for 3 h with its host."""
    runs: list[str] = []

    def recorder(name: str):
        async def job() -> None:
            runs.append(name)

        return job

    a, b = Scheduler(), Scheduler()
    a.add("housekeeping", 3600, recorder("a"), cluster=True)
    b.add("housekeeping", 3600, recorder("b"), cluster=True)
    (job_a,), (job_b,) = a.jobs, b.jobs
    await a.tick(job_a)
    await b.tick(job_b)
    assert runs == ["a"]
    fake_clock.advance(seconds=5)
    await a.tick(job_a)  # the holder renews; not due again
    await b.tick(job_b)
    assert runs == ["a"]
    # a's host dies here: no more renewals. b takes over once the lease has run out, not an hour later...
    fake_clock.advance(seconds=LEASE_SECONDS + 0.001)
    await b.tick(job_b)
    assert (await JobLease.get(name="housekeeping")).owner == b.owner
    assert runs == ["a"]  # ...and runs the job when it is due by a's last run, not at once
    fake_clock.advance(seconds=3600 - 5 - LEASE_SECONDS - 1)
    await b.tick(job_b)
    assert runs == ["a"]
    fake_clock.advance(seconds=1)
    await b.tick(job_b)
    assert runs == ["a", "b"]


async def test_a_worker_never_runs_a_cluster_job_twice_within_its_period_of_its_own_clock(fake_clock):
    """The way it was found: a test's fake clock moved a day on, and the 5 s lease tick ran the job again at once."""
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)

    scheduler = Scheduler()
    scheduler.add("booking-no-shows", 60, job, cluster=True)
    (entry,) = scheduler.jobs
    await scheduler.tick(entry)
    fake_clock.advance(days=1)  # the shared time says it is due again; this worker ran it a moment ago
    await scheduler.tick(entry)
    assert runs == [1]
    entry.ran_at -= 60  # a period of this worker's own time later
    await scheduler.tick(entry)
    assert runs == [1, 1]


async def test_the_app_schedules_the_cache_sync_tick(client, app, settings):
    jobs = {job.name: job for job in app.ctx.scheduler.jobs}
    assert jobs["cache-sync"].every == settings.cache_poll_seconds
    assert jobs["cache-sync"].cluster is False
    assert jobs["cache-sync"].func == app.ctx.cache.sync


async def test_outbox_delivery_runs_in_every_worker_and_leased_jobs_in_one(client, app):
    # Delivery claims rows with SKIP LOCKED, so it needs no lease; what app.jobs documents is what the app does.
    cluster = {job.name: job.cluster for job in app.ctx.scheduler.jobs}
    assert cluster["notify-delivery"] is False
    assert cluster["booking-no-shows"] is True and cluster["housekeeping"] is True
