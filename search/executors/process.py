"""Evaluations in worker processes that can be killed: one (the default) or a local pool.

A worker process keeps a hung candidate (an export or a latency run that never returns) from
hanging the search: past ``timeout_s`` the worker is killed, the candidate is recorded as failed,
and a fresh worker takes the next one. A worker that dies under a candidate (out of memory, a
segfault in a native library) is replaced and the candidate re-run once; only a candidate that
kills its worker twice is recorded as failed.
"""
from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import signal
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from search.executors._base import Executor, done
from search.pipeline import EvaluationPipeline, Outcome
from spaces._base import Genome
from spaces.errors import ArchpruneError


def pickled_pipeline(pipeline: EvaluationPipeline, fallback: str) -> bytes:
    try:
        return pickle.dumps(pipeline)
    except Exception as err:
        raise ArchpruneError(f"the evaluators cannot be sent to a worker process ({err}); {fallback}") from None


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


class WorkerProcess:
    """One spawned worker (no forked torch thread pools), restarted after a timeout or a crash."""

    def __init__(self, payload: bytes, timeout_s: float | None, start_timeout_s: float = 600.0) -> None:
        self._payload, self.timeout_s, self.start_timeout_s = payload, timeout_s, start_timeout_s
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
            self.stop()
            raise ArchpruneError(f"the evaluation worker did not start within {self.start_timeout_s:.0f} s")
        try:
            kind, detail = parent.recv()
        except EOFError:
            kind, detail = "error", f"it exited with code {self._proc.exitcode}"
        if kind != "ready":
            self.stop()
            raise ArchpruneError(f"the evaluation worker could not start: {detail}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def evaluate(self, genome: Genome) -> Outcome:
        codes = []
        for _ in range(2):  # a worker lost under a candidate costs one re-run, not the candidate
            outcome = self._attempt(genome)
            if isinstance(outcome, Outcome):
                return outcome
            codes.append(outcome)
        return Outcome(error=f"WorkerDied: the evaluation worker exited (codes {codes[0]}, {codes[1]}) under this "
                             "candidate twice")

    def _attempt(self, genome: Genome) -> Outcome | int | None:
        """The outcome, or the exit code of a worker that died under the candidate."""
        if self._proc is None or not self._proc.is_alive():
            self.stop()
            self._start()
        assert self._conn is not None
        self._conn.send(tuple(genome))
        if not self._conn.poll(self.timeout_s):
            self.stop()  # the next candidate gets a fresh worker
            return Outcome(error=f"TimeoutError: the candidate took longer than {self.timeout_s:g} s "
                                 "(--candidate-timeout); its worker was stopped")
        try:
            _, outcome = self._conn.recv()
        except (EOFError, ConnectionResetError):
            code = self._proc.exitcode if self._proc is not None else None
            self.stop()
            return code
        return outcome

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        self.stop()


class ProcessExecutor(Executor):
    """One worker process; the search waits for each candidate (the default)."""

    def __init__(self, pipeline: EvaluationPipeline, timeout_s: float | None = 600.0) -> None:
        self.worker = WorkerProcess(pickled_pipeline(pipeline, "use --executor inline"), timeout_s)

    def submit(self, genome: Genome) -> Future[Outcome]:
        return done(self.worker.evaluate(genome))

    def close(self) -> None:
        self.worker.close()


class PoolExecutor(Executor):
    """``--workers N``: N worker processes on this machine, N candidates in flight.

    Each worker keeps the one-worker guarantees (timeout kill, one re-run after a crash). Latency
    stays one candidate at a time on this machine through the latency evaluator's file lock, so
    N > 1 pays off for FLOPs and the proxies, not for measuring.
    """

    def __init__(self, pipeline: EvaluationPipeline, workers: int, timeout_s: float | None = 600.0) -> None:
        payload = pickled_pipeline(pipeline, "use --executor inline")
        self.capacity = workers
        self._idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()
        self._all = [WorkerProcess(payload, timeout_s) for _ in range(workers)]
        for worker in self._all:
            self._idle.put(worker)
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archprune-pool")

    def _run(self, genome: Genome) -> Outcome:
        worker = self._idle.get()
        try:
            return worker.evaluate(genome)
        except ArchpruneError as err:  # the worker could not start: this candidate fails, the next retries
            return Outcome(error=str(err))
        finally:
            self._idle.put(worker)

    def submit(self, genome: Genome) -> Future[Outcome]:
        return self._threads.submit(self._run, tuple(genome))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        for worker in self._all:
            worker.close()
