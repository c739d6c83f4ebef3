"""One thread that runs a language model's jobs one at a time, with a bounded waiting line.

A model on a CPU gains nothing from concurrent calls, so ``genrec serve-lm`` queues them: the
:class:`ModelWorker` runs one :class:`Job` at a time in its own (daemon) thread and admits at
most ``max_waiting`` more; beyond that :meth:`ModelWorker.submit` raises :class:`Busy` at once
(the server answers 503 with ``Retry-After``). A job sees its own cancellation and deadline
through :meth:`Job.check`, which the work calls between tokens: a job whose client went away or
whose time ran out stops at its next token, or is dropped before it starts when it was still
waiting, so nobody keeps the model after giving up.

Example:
    >>> worker = ModelWorker(max_waiting=1)
    >>> job = Job(timeout=5.0)
    >>> worker.submit(lambda job: "done", job).result(timeout=5)
    'done'
    >>> worker.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Busy(Exception):
    """The model is busy and the waiting line is full."""


class Cancelled(Exception):
    """The job was cancelled (its client went away or the server is stopping)."""


class Expired(Exception):
    """The job ran past its deadline."""


class Job:
    """What one request asked the model to do: a cancel flag, a deadline and an outlet for
    pieces of output (``emit``) that a streaming response reads.

    Args:
        timeout: seconds from now (waiting included) before :meth:`check` raises Expired.
        emit: called with each piece of output from the worker thread (default: dropped).
    """

    def __init__(self, *, timeout: float, emit: Callable[[Any], None] | None = None):
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.emit = emit or (lambda piece: None)
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise Cancelled or Expired when the job should stop now."""
        if self._cancelled.is_set():
            raise Cancelled("the request was cancelled")
        if time.monotonic() > self.deadline:
            raise Expired(f"the request ran past this server's limit of {self.timeout:g} s")


class ModelWorker:
    """Runs ``work(job)`` calls one at a time in one daemon thread, at most ``max_waiting``
    queued behind the running one."""

    def __init__(self, *, max_waiting: int):
        self.capacity = max_waiting + 1
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted: set[Job] = set()
        self._thread = threading.Thread(target=self._loop, name="genrec-lm-worker", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs admitted and not yet finished (the running one included)."""
        with self._lock:
            return len(self._admitted)

    def submit(self, work: Callable[[Job], Any], job: Job) -> Future:
        """Queue ``work(job)``; its Future. Raises Busy when the line is full."""
        with self._lock:
            if len(self._admitted) >= self.capacity:
                raise Busy(
                    f"{len(self._admitted)} requests are running or waiting (this server "
                    f"queues at most {self.capacity - 1} behind the running one)"
                )
            self._admitted.add(job)
        future: Future = Future()
        future.add_done_callback(lambda _: self._release(job))  # also when cancelled waiting
        self._queue.put((work, job, future))
        return future

    def _release(self, job: Job) -> None:
        with self._lock:
            self._admitted.discard(job)

    def close(self) -> None:
        """Cancel every admitted job and stop the thread after the running one."""
        with self._lock:
            for job in self._admitted:
                job.cancel()
        self._queue.put(None)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            work, job, future = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while waiting
            try:
                job.check()  # gave up or expired while waiting: never starts
                future.set_result(work(job))
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                future.set_exception(exc)


__all__ = ["Busy", "Cancelled", "Expired", "Job", "ModelWorker"]
