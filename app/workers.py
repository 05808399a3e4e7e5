"""Worker supervision in Sanic's main process: a server worker that dies is replaced within a second or two."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sanic import Sanic
from sanic.worker.constants import ProcessState
from sanic.worker.manager import WorkerManager
from sanic.worker.process import WorkerProcess

log = logging.getLogger("app.workers")

_DEAD = (ProcessState.FAILED, ProcessState.COMPLETED)
_SERVER_PREFIX = f"Sanic-{WorkerProcess.SERVER_LABEL}-"
# A worker that dies again within this long of its replacement waits longer before the next one (1 s, 2 s, ... 30 s).
_FLAPPING_SECONDS = 60.0
_MAX_DELAY = 30.0


def set_ack_threshold(seconds: int) -> None:
    """How long Sanic's main process waits for every worker's start-up acknowledgement before it gives up."""
    WorkerManager.THRESHOLD = seconds * 10  # Sanic counts tenths of a second


class Watchdog:
    """Asks the worker manager to restart each server worker that has died (its monitor loop only records it)."""

    def __init__(self, manager: WorkerManager, interval: float = 0.2) -> None:
        self.manager = manager
        self.interval = interval
        self._handled: set[int] = set()  # pids whose replacement was requested
        self._replaced_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._pending: dict[str, float] = {}  # name -> when its delayed replacement is due
        self._stop = threading.Event()

    def start(self) -> threading.Thread:
        """Watch in a daemon thread of the main process."""
        thread = threading.Thread(target=self._run, name="worker-watchdog", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching (the thread ends at its next tick)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.manager._shutting_down:  # no public flag: Sanic sets it when SIGINT/SIGTERM stops the service
                return
            try:
                self.tick(time.monotonic())
            except Exception:  # the watchdog must outlive any surprise in Sanic's state
                log.exception("worker watchdog tick failed")

    def tick(self, now: float) -> list[str]:
        """Request the replacement of every dead server worker whose back-off has passed; the names requested."""
        requested = []
        for process in list(self.manager.transient_processes):
            if not process.name.startswith(_SERVER_PREFIX) or process.state not in _DEAD:
                continue
            pid = process.pid
            if pid is None or pid in self._handled:
                continue
            if now < self._due(process.name, now):
                continue
            self._handled.add(pid)
            self._replaced_at[process.name] = now
            log.error("worker %s [%s] died (exit code %s): starting a replacement", process.name, pid, process.exitcode)
            # The manager's own loop restarts it (in the main thread), as for `app.m.restart(name)` from a worker.
            self.manager.monitor_publisher.send(f"{process.name}:")
            requested.append(process.name)
        return requested

    def _due(self, name: str, now: float) -> float:
        """When the next replacement of this worker may start: at once, unless it keeps dying soon after starting."""
        last = self._replaced_at.get(name)
        if last is None or now - last > _FLAPPING_SECONDS:
            self._delay[name] = 0.0
            return now
        if name not in self._pending:
            self._delay[name] = min(_MAX_DELAY, max(1.0, 2 * self._delay.get(name, 0.0)))
            self._pending[name] = now + self._delay[name]
        due = self._pending[name]
        if now >= due:
            del self._pending[name]
        return due


def install(app: Sanic) -> None:
    """Start the watchdog once the worker manager exists (main process, multi-process mode only)."""

    @app.main_process_ready
    async def _watch(app: Sanic, _: Any = None) -> None:
        watchdog = Watchdog(app.manager)
        watchdog.start()
        app.ctx.watchdog = watchdog
