"""Errors of the ASL engine: bad definitions, and runtime errors with States names."""

from __future__ import annotations


class DefinitionError(ValueError):
    """The definition is not valid or uses something the engine does not support.

    The message names the state and the field, e.g. ``state 'Infer': field 'Mode': ...``.
    """


class StatesError(Exception):
    """A runtime error as Step Functions names it (``States.Runtime``, a Lambda errorType ...)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class ExecutionStopped(Exception):
    """The execution was aborted or timed out; unwinds every running state."""


# Errors a Retry/Catch `States.TaskFailed` does not match.
NOT_TASK_FAILED = {"States.Timeout", "States.HeartbeatTimeout"}
RUNTIME = "States.Runtime"
TIMEOUT = "States.Timeout"
TASK_FAILED = "States.TaskFailed"
NO_CHOICE = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
EXCEED_TOLERATED = "States.ExceedToleratedFailureThreshold"
BRANCH_FAILED = "States.BranchFailed"


def matches(error_equals: list[str], error: str) -> bool:
    """Whether a Retrier/Catcher's ErrorEquals matches ``error``."""
    for name in error_equals:
        if name == "States.ALL" or name == error:
            return True
        if name == TASK_FAILED and error not in NOT_TASK_FAILED:
            return True
    return False
