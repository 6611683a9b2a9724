"""``--islands N``: N search processes on one run, started and waited for by the first.

A zero-shot search scores a structure in microseconds; what it spends its time on is the driver
(mutation and the analytic budget check) and the store, in one Python process, so it used one core
of two (666 structures/s on a quiet core, 858 with two islands; BENCHMARKS.md). Islands are the same search with seeds ``seed + i``: each
runs its own loop and executor and writes its own batches, and a driver that shares runs reads what
the others stored before every batch (the zero-shot EA takes it into its population; an Optuna
sampler reads the study anyway). Island 0 is the ``archprune search`` process: it starts the others
once the run's store and run.yaml exist, forwards a stop to them, waits for them and reports the
whole run. Every island stops when the store holds ``--trials`` (it may pass that by up to one
batch per other island) or at its own time budget. A resumed run starts its islands again.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from typing import Any, Callable

from search.pareto import stored_front
from search.runner import SearchResult
from search.settings import RunSettings
from spaces.errors import ArchpruneError

STOP_WAIT_S = 60.0  # after a failure of island 0, how long the others get to stop before they are killed


def island_main(values: dict[str, Any], island: int) -> None:
    """The entry point of island ``island`` (a spawned process)."""
    from search.job import file_logger, run_search

    settings = RunSettings.from_dict(values)
    log = file_logger(settings.run_dir() / "search.log")
    try:
        run_search(settings, progress=False, say=lambda line: None, island=island)
    except ArchpruneError as err:  # the user reads search.log and island 0's summary, not this process's stderr
        log(f"[island {island}] stopped by an error: {err}")
        sys.exit(2)
    except Exception:  # a bug: its traceback goes where island 0's summary points
        log(f"[island {island}] crashed:\n{traceback.format_exc().rstrip()}")
        sys.exit(1)


class Islands:
    """The islands after the first, as processes of this one."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def start(self) -> None:
        """Start islands 1..N-1 (spawned: the search process holds database connections and threads,
        which a fork would copy)."""
        context = multiprocessing.get_context("spawn")
        for island in range(1, self.settings.islands):
            process = context.Process(target=island_main, args=(self.settings.to_dict(), island),
                                      name=f"archprune-island-{island}")
            process.start()
            self.processes.append(process)

    def stop(self) -> None:
        """Ask every island to stop after its current candidate (what Ctrl-C does to island 0)."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def join(self, result: SearchResult, log: Callable[[str], None], say: Callable[[str], None]) -> SearchResult:
        """Wait for the islands; the run's result over every island's trials."""
        if not self.processes:
            return result
        if result.stopped in ("interrupted", "terminated"):
            self.stop()
        for process in self.processes:
            process.join()
        failed = [f"island {i} (exit code {p.exitcode})" for i, p in enumerate(self.processes, start=1) if p.exitcode]
        store = result.store
        store.refresh()
        front = stored_front(store)
        line = (f"{len(self.processes) + 1} islands: {len(store)} trials in the store, front of {len(front)}"
                + (f"; {', '.join(failed)} stopped early, see search.log" if failed else ""))
        log(line)
        say(line)
        return SearchResult(store=store, evaluated=result.evaluated, stopped=result.stopped, front=front)

    def __enter__(self) -> "Islands":
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            return
        self.stop()  # island 0 failed or was stopped at once: the others stop too
        for process in self.processes:
            process.join(STOP_WAIT_S)
            if process.is_alive():
                process.kill()
