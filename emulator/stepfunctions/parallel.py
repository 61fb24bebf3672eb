"""The Parallel state's runner.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html): every
branch gets the same input (the state's arguments) and runs in its own variable scope;
the result is the array of branch outputs in branch order; when a branch fails, the state
fails with that error and the other branches stop (here: before their next state). Each
attempt records ParallelStateStarted; ParallelStateFailed is recorded once, when the state
finally fails (after its retries).
"""

from __future__ import annotations

import threading
from typing import Any

import emulator.stepfunctions.errors as E
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step


def run_parallel(execution: ExecutionPort, step: Step) -> Outcome:
    """Run the branches concurrently; their outputs in order."""
    branch_input = step.lang.arguments(step)
    branches = step.state["Branches"]
    started = execution.history.add("ParallelStateStarted")
    results: list[Any] = [None] * len(branches)
    failures: list[E.StatesError] = []
    stopped: list[E.ExecutionStopped] = []
    cancel = threading.Event()

    def run(i: int, branch: dict) -> None:
        execution.history.follow(started)  # each branch's events chain from ParallelStateStarted
        try:
            results[i] = execution.run_machine(branch, branch_input, None, step, cancel)
        except E.StatesError as exc:
            failures.append(exc)
            cancel.set()
        except E.BranchStopped:
            pass
        except E.ExecutionStopped as exc:
            stopped.append(exc)

    threads = [threading.Thread(target=run, args=(i, b), daemon=True) for i, b in enumerate(branches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    execution.history.follow_latest()
    if stopped:
        raise stopped[0]
    if failures:
        raise failures[0]  # the engine records ParallelStateFailed once, when no retry is left
    execution.history.add("ParallelStateSucceeded", advance=False)
    return Outcome(results)
