"""The watchdog asks Sanic's manager to restart dead server workers once per death, backing off if one keeps dying."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sanic.worker.constants import ProcessState
from sanic.worker.manager import WorkerManager

from app.workers import Watchdog, set_ack_threshold


@dataclass
class FakeProcess:
    name: str
    pid: int
    state: ProcessState = ProcessState.ACKED
    exitcode: int | None = None


@dataclass
class FakeManager:
    transient_processes: list[FakeProcess]
    sent: list[str] = field(default_factory=list)
    _shutting_down: bool = False

    @property
    def monitor_publisher(self) -> FakeManager:
        return self

    def send(self, message: str) -> None:
        self.sent.append(message)


def test_dead_server_worker_is_restarted_once_per_death():
    worker, reloader = FakeProcess("Sanic-Server-0-0", 10), FakeProcess("Sanic-Reloader-0", 11)
    manager = FakeManager([worker, FakeProcess("Sanic-Server-1-0", 12), reloader])
    watchdog = Watchdog(manager)  # type: ignore[arg-type]
    assert watchdog.tick(0.0) == []
    worker.state, worker.exitcode = ProcessState.FAILED, -9
    reloader.state = ProcessState.FAILED  # not a server worker: not ours to restart
    assert watchdog.tick(1.0) == ["Sanic-Server-0-0"]
    assert manager.sent == ["Sanic-Server-0-0:"]  # the message `app.m.restart(name)` sends
    assert watchdog.tick(1.2) == []  # the same death is not reported twice while Sanic restarts it
    worker.pid, worker.state = 20, ProcessState.ACKED
    assert watchdog.tick(5.0) == []


def test_a_worker_that_keeps_dying_waits_longer_each_time():
    worker = FakeProcess("Sanic-Server-0-0", 10, ProcessState.FAILED, 1)
    watchdog = Watchdog(FakeManager([worker]))  # type: ignore[arg-type]
    assert watchdog.tick(0.0)
    worker.pid += 1  # the replacement dies at once too
    restarts = [0.0]
    now = 0.0
    while now < 120:
        now = round(now + 0.1, 1)
        if watchdog.tick(now):
            restarts.append(now)
            worker.pid += 1
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(restarts)]
    assert gaps[:6] == [1.1, 2.1, 4.1, 8.1, 16.1, 30.1]  # noticed a tick after its start, then 1 s, 2 s, ... 30 s
    assert max(gaps) == 30.1


def test_worker_that_dies_after_a_quiet_minute_is_replaced_at_once():
    worker = FakeProcess("Sanic-Server-0-0", 10, ProcessState.FAILED, -9)
    watchdog = Watchdog(FakeManager([worker]))  # type: ignore[arg-type]
    assert watchdog.tick(0.0)
    worker.pid = 11
    assert watchdog.tick(100.0)


def test_ack_threshold_reaches_sanic():
    before = WorkerManager.THRESHOLD
    try:
        set_ack_threshold(120)
        assert WorkerManager.THRESHOLD == 1200  # tenths of a second, as Sanic counts
    finally:
        WorkerManager.THRESHOLD = before
