"""Errors of the ASL engine: bad definitions, and runtime errors with States names.

Matching rules (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html):
``States.ALL`` matches any error except the terminal ``States.DataLimitExceeded`` and
``States.Runtime``; ``States.Runtime`` is never retried or caught, even when named, and always
fails the execution; ``States.DataLimitExceeded`` is caught only when named.
"""

from __future__ import annotations

from emulator.contracts import aws


class DefinitionError(ValueError):
    """The definition is not valid or uses something the engine does not support.

    The message names the state and the field, e.g. ``state 'Infer': field 'Mode': ...``.
    """


class StatesError(Exception):
    """A runtime error as Step Functions names it (``States.Runtime``, a Lambda errorType ...)."""

    def __init__(self, error: str | None, cause: str | None = "", location: str | None = None) -> None:
        super().__init__(f"{error}: {cause}" if cause else str(error))
        self.error = error
        self.cause = cause
        self.location = location  # the field a JSONata expression was in (EvaluationFailed "location")
        self.located = False  # whether the cause already names the state (see ``locate``)


class ExecutionStopped(Exception):
    """The execution was aborted or timed out; unwinds every running state."""


class BranchStopped(Exception):
    """A sibling Parallel branch failed: this branch stops at its next state, as AWS stops all branches."""


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
DATA_LIMIT_EXCEEDED = aws.STATES_DATA_LIMIT_EXCEEDED
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
# concepts-error-handling.html: "a state's ResultPath field cannot be applied to the input the state received".
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
# Not matched by States.ALL or States.TaskFailed.
TERMINAL = {RUNTIME, DATA_LIMIT_EXCEEDED}
# AWS's cause when a Standard execution's history reaches its quota.
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({aws.MAX_HISTORY_EVENTS})."


def matches(error_equals: list[str], error: str | None) -> bool:
    """Whether a Retrier/Catcher's ErrorEquals matches ``error``."""
    if error == RUNTIME or error is None:
        return False
    for name in error_equals:
        if name == error:
            return True
        if name == "States.ALL" and error not in TERMINAL:
            return True
        if name == TASK_FAILED and error not in NOT_TASK_FAILED and error not in TERMINAL:
            return True
    return False


# Errors the interpreter raises itself (not a task's or a Fail state's), whose cause AWS prefixes
# with the state that raised them.
INTERPRETER_ERRORS = {RUNTIME, QUERY_EVALUATION_ERROR, INTRINSIC_FAILURE, RESULT_PATH_MATCH_FAILURE}


def locate(exc: StatesError, state: str, entered_event_id: int) -> None:
    """Prefix an interpreter error's cause as AWS does, once, at the innermost state:
    "An error occurred while executing the state 'X' (entered at the event id #2). ..."."""
    if exc.located or exc.error not in INTERPRETER_ERRORS or exc.cause == HISTORY_LIMIT_CAUSE:
        return
    exc.located = True
    exc.cause = f"An error occurred while executing the state '{state}' (entered at the event id #{entered_event_id}). " \
                f"{exc.cause or ''}".rstrip()
