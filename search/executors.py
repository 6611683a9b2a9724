"""Where evaluations run: in the search process, or in one worker process that can be killed.

A worker process keeps a hung candidate (an export or a latency run that never returns) from
hanging the search: past ``timeout_s`` the worker is killed, the candidate is recorded as failed,
and a fresh worker takes the next one. A worker that dies (out of memory, a segfault in a native
library) costs only its candidate. Pool and cluster executors build on the same ``evaluate`` seam.
"""
from __future__ import annotations

import abc
import multiprocessing as mp
import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any

from search.pipeline import EvaluationPipeline, Outcome
from spaces._base import Genome
from spaces.errors import ArchpruneError

EXECUTORS = ("process", "inline")


class Executor(abc.ABC):
    @abc.abstractmethod
    def evaluate(self, genome: Genome) -> Outcome:
        """Score one candidate; failures come back as an ``Outcome`` with ``error`` set, never raised."""

    def close(self) -> None:
        """Release workers (optional)."""


class InlineExecutor(Executor):
    """In the search process: simplest to debug, but a hung candidate hangs the search."""

    def __init__(self, pipeline: EvaluationPipeline) -> None:
        self.pipeline = pipeline

    def evaluate(self, genome: Genome) -> Outcome:
        return self.pipeline.evaluate(genome)


def _worker(conn: Connection, payload: bytes) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the search: it finishes this candidate
    try:
        pipeline: EvaluationPipeline = pickle.loads(payload)
    except BaseException as err:  # report why the worker cannot start, then exit
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            genome = conn.recv()
        except EOFError:  # the search process is gone (killed): nothing left to do
            return
        if genome is None:
            return
        conn.send(("done", pipeline.evaluate(genome)))


class ProcessExecutor(Executor):
    """One worker process (spawned: no forked torch thread pools), restarted after a timeout or a crash."""

    def __init__(self, pipeline: EvaluationPipeline, timeout_s: float | None = 600.0,
                 start_timeout_s: float = 600.0) -> None:
        try:
            self._payload = pickle.dumps(pipeline)
        except Exception as err:
            raise ArchpruneError(f"the evaluators cannot be sent to a worker process ({err}); "
                                 "use --executor inline") from None
        self.timeout_s, self.start_timeout_s = timeout_s, start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child, self._payload), daemon=True,
                                       name="archprune-evaluator")
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(self.start_timeout_s):
            self._stop()
            raise ArchpruneError(f"the evaluation worker did not start within {self.start_timeout_s:.0f} s")
        try:
            kind, detail = parent.recv()
        except EOFError:
            kind, detail = "error", f"it exited with code {self._proc.exitcode}"
        if kind != "ready":
            self._stop()
            raise ArchpruneError(f"the evaluation worker could not start: {detail}")

    def _stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def evaluate(self, genome: Genome) -> Outcome:
        if self._proc is None or not self._proc.is_alive():
            self._stop()
            self._start()
        assert self._conn is not None
        self._conn.send(tuple(genome))
        if not self._conn.poll(self.timeout_s):
            self._stop()  # the next candidate gets a fresh worker
            return Outcome(error=f"TimeoutError: the candidate took longer than {self.timeout_s:g} s "
                                 "(--candidate-timeout); its worker was stopped")
        try:
            _, outcome = self._conn.recv()
        except (EOFError, ConnectionResetError):
            code = self._proc.exitcode if self._proc is not None else None
            self._stop()
            return Outcome(error=f"WorkerDied: the evaluation worker exited with code {code} during this candidate")
        return outcome

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        self._stop()


def make_executor(kind: str, pipeline: EvaluationPipeline, timeout_s: float | None = None) -> Executor:
    if kind == "inline":
        return InlineExecutor(pipeline)
    if kind == "process":
        return ProcessExecutor(pipeline, timeout_s=timeout_s)
    raise ArchpruneError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
