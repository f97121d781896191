"""Decoder processes: a pool that outlives a worker's death, and workers that never outlive their parent.

Photos are decoded in spawned worker processes. Two things go wrong there that must not
stop a run or leave debris:

- A worker dies (the out-of-memory killer, a crash in a C decoder). The executor then fails
  every file in flight. ``DecoderPool.imap`` starts a new pool, runs each of those files
  again on its own, and only a file whose lone run kills its worker again is given up, with
  a reason ("decoder crashed ..."); the rest carry on.
- The parent dies (kill -9, a crash). Workers must exit with it rather than live on as
  orphans: on Linux the kernel kills them (``PR_SET_PDEATHSIG``); everywhere a thread in the
  worker also waits on the pipe from its parent and exits when it closes. The
  multiprocessing resource tracker then sees its last writer gone and exits too.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from engine.errors import EnvironmentProblem

log = logging.getLogger(__name__)

CRASH_REASON = "decoder crashed"  # the prefix of the reason given for a file that kills its decoder

# Tests only: a worker that is handed a file whose name contains this text kills itself with
# SIGKILL, as the out-of-memory killer would. Read once per worker process from the
# environment, which only a test sets; nothing in a photo can turn it on.
TEST_CRASH_ENV = "LOOKALIKE_TEST_CRASH_DECODER_ON"
_crash_marker: str | None = None

_START_TIMEOUT = 120.0  # seconds for a new pool's first worker to answer (spawn + imports)


@dataclass(frozen=True)
class Crashed:
    """The result given for an item whose worker died every time it ran (alone)."""

    reason: str


def init_worker(parent_pid: int, initializer: Callable | None = None, *initargs) -> None:
    """Worker initializer: die with the parent, then the caller's own initializer."""
    global _crash_marker
    exit_with_parent(parent_pid)
    _crash_marker = os.environ.get(TEST_CRASH_ENV) or None
    if initializer is not None:
        initializer(*initargs)


def exit_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit as soon as its parent ``parent_pid`` is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # an odd libc: the watcher thread below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # The parent's end of the pipe this process was started through closes when the
        # parent dies (on every platform): wait for that, then leave at once.
        threading.Thread(target=_exit_when_gone, args=(parent,), name="lookalike-parent-watch",
                         daemon=True).start()


def _exit_when_gone(parent) -> None:
    parent.join()
    os._exit(1)


def crash_if_marked(path: str) -> None:
    """Tests only (see TEST_CRASH_ENV): die like a worker the out-of-memory killer chose."""
    if _crash_marker is not None and _crash_marker in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)


class DecoderPool:
    """Spawned worker processes that die with this one; ``imap`` survives a worker's death."""

    def __init__(self, workers: int, initializer: Callable | None = None, initargs: tuple = ()):
        self.workers = workers
        self._initializer = initializer
        self._initargs = initargs
        self.restarts = 0
        self._pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker, initargs=(os.getpid(), self._initializer, *self._initargs))
        # Start every worker now (spawn and imports take a second), not on the first photos.
        self._warm = [pool.submit(os.getpid) for _ in range(self.workers)]
        return pool

    def submit(self, fn: Callable, *args) -> cf.Future:
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def restart(self) -> str:
        """Replace a broken pool; returns what is known of how its worker died."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=True, cancel_futures=True)
        cause = _death_cause(processes)
        log.warning("a decoder process died (%s); starting new ones", cause)
        self.restarts += 1
        self._pool = self._start()
        try:
            self._warm[0].result(timeout=_START_TIMEOUT)
        except (BrokenProcessPool, cf.TimeoutError) as exc:
            raise EnvironmentProblem(f"decoder processes cannot start ({exc or 'no answer'})") from exc
        return cause

    def imap(self, fn: Callable, items: Iterable, *, window: int, cancel: threading.Event | None = None,
             arg_of: Callable | None = None) -> Iterator[tuple[object, object]]:
        """(item, fn(item)) for each item (fn(arg_of(item)) if given), up to ``window`` in flight;
        roughly in order.

        When a worker dies, every item in flight fails with it: the pool is replaced and those
        items run again one at a time; an item whose lone run kills its worker again yields
        ``Crashed``. On ``cancel`` no new item starts and the ones still running are dropped.
        """
        source = iter(items)
        pending: deque[tuple[object, cf.Future | None, bool]] = deque()  # item, future, running alone
        suspects: deque = deque()  # in flight when a worker died: each runs again alone
        try:
            while True:
                stopping = cancel is not None and cancel.is_set()
                if not stopping:
                    if suspects:
                        if not pending:
                            item = suspects.popleft()
                            pending.append((item, self._submit_or_none(fn, item, arg_of), True))
                    else:
                        while len(pending) < window:
                            item = next(source, _END)
                            if item is _END:
                                break
                            pending.append((item, self._submit_or_none(fn, item, arg_of), False))
                if not pending:
                    return
                item, future, alone = pending.popleft()
                if stopping and (future is None or not future.done()):
                    continue
                try:
                    if future is None:
                        raise BrokenProcessPool("the pool broke before this item was submitted")
                    result = future.result()
                except BrokenProcessPool:
                    cause = self.restart()
                    if alone:
                        yield item, Crashed(f"{CRASH_REASON} ({cause})")
                        continue
                    # The old pool is shut down: each future is settled. Keep what finished
                    # before the death; everything else runs again, one at a time.
                    suspects.append(item)
                    kept: deque = deque()
                    for other, other_future, _ in pending:
                        if _finished(other_future):
                            kept.append((other, other_future, False))
                        else:
                            suspects.append(other)
                    pending = kept
                    continue
                yield item, result
        finally:
            for _, future, _ in pending:
                if future is not None:
                    future.cancel()

    def _submit_or_none(self, fn: Callable, item, arg_of: Callable | None) -> cf.Future | None:
        try:
            return self._pool.submit(fn, item if arg_of is None else arg_of(item))
        except BrokenProcessPool:  # a worker died while idle: noticed when its result is asked for
            return None


_END = object()


def _finished(future: cf.Future | None) -> bool:
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


def _death_cause(processes: list) -> str:
    """How a pool's worker died, from the exit codes of its processes (best effort)."""
    for process in processes:
        code = process.exitcode
        if code is None or code == 0 or code == -signal.SIGTERM:  # SIGTERM: the executor's own cleanup
            continue
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}, often for lack of memory" if -code == signal.SIGKILL else f"killed by {name}"
        return f"exit code {code}"
    return "the process ended abruptly"
