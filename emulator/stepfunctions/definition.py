"""Up-front validation of a definition: every mistake reported with its state and field."""

from __future__ import annotations

import re
from typing import Any

from typing import Mapping

from emulator.stepfunctions.errors import DefinitionError
from emulator.stepfunctions.port import StateType, ValidationScope

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$")

_COMMON = frozenset({"Type", "Comment", "Next", "End", "InputPath", "OutputPath"})
_RETRY = frozenset({"Retry", "Catch"})
TASK_FIELDS = _COMMON | _RETRY | {"Resource", "Parameters", "ResultSelector", "ResultPath", "TimeoutSeconds",
                                  "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath"}
PASS_FIELDS = _COMMON | {"Result", "ResultPath", "Parameters"}
CHOICE_FIELDS = frozenset({"Type", "Comment", "InputPath", "OutputPath", "Choices", "Default"})
WAIT_FIELDS = _COMMON | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"}
SUCCEED_FIELDS = frozenset({"Type", "Comment", "InputPath", "OutputPath"})
FAIL_FIELDS = frozenset({"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"})
PARALLEL_FIELDS = _COMMON | _RETRY | {"Branches", "Parameters", "ResultSelector", "ResultPath"}
MAP_FIELDS = _COMMON | _RETRY | {"ItemProcessor", "Iterator", "ItemsPath", "ItemReader", "ItemSelector", "Parameters",
                                 "ItemBatcher", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage",
                                 "ToleratedFailurePercentagePath", "ToleratedFailureCount", "ToleratedFailureCountPath",
                                 "ResultWriter", "ResultSelector", "ResultPath", "Label"}
# Recognised AWS features this engine does not run: named so the error is explicit.
_UNSUPPORTED = {
    "QueryLanguage": "JSONata is not supported; use the JSONPath query language",
    "Arguments": "JSONata 'Arguments' is not supported; use 'Parameters'",
    "Output": "JSONata 'Output' is not supported; use 'OutputPath'/'ResultSelector'",
    "Assign": "variables ('Assign') are not supported",
    "Credentials": "cross-account 'Credentials' are not supported",
}


class _Scope:
    """The states of one (sub-)machine, for validators (see ``port.ValidationScope``)."""

    def __init__(self, states: Mapping[str, Any], types: Mapping[str, StateType], language: str) -> None:
        self.states = states
        self.types = types
        self.language = language

    def validate_machine(self, machine: Any, where: str, language: str) -> None:
        validate_machine(machine, self.types, where)


def _err(state: str, field: str, why: str) -> DefinitionError:
    return DefinitionError(f"state {state!r}: field {field!r}: {why}")


def validate_machine(machine: Any, types: Mapping[str, StateType], where: str = "the state machine") -> None:
    """Validate a top-level definition or a nested Branch/ItemProcessor.

    Raises:
        DefinitionError: naming the state and field that are wrong.
    """
    if not isinstance(machine, dict):
        raise DefinitionError(f"{where} must be a JSON object")
    for field in ("QueryLanguage",):
        if field in machine and machine[field] != "JSONPath":
            raise DefinitionError(f"{where}: field {field!r}: {_UNSUPPORTED[field]}")
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: field 'States' must be a non-empty object")
    start = machine.get("StartAt")
    if start not in states:
        raise DefinitionError(f"{where}: field 'StartAt': {start!r} is not a state (states: {', '.join(states)})")
    timeout = machine.get("TimeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise DefinitionError(f"{where}: field 'TimeoutSeconds' must be a positive integer")
    scope = _Scope(states, types, "JSONPath")
    for name, state in states.items():
        _validate_state(name, state, scope)


def _check_next(name: str, state: dict, states: dict) -> None:
    terminal = state.get("End") is True
    if "Next" in state and terminal:
        raise _err(name, "End", "a state cannot have both 'Next' and 'End'")
    if not terminal:
        if "Next" not in state:
            raise _err(name, "Next", "missing: give 'Next' or \"End\": true")
        if state["Next"] not in states:
            raise _err(name, "Next", f"{state['Next']!r} is not a state in this scope")


def _validate_retry_catch(name: str, state: dict, states: dict) -> None:
    for i, retrier in enumerate(state.get("Retry", [])):
        field = f"Retry[{i}]"
        if not isinstance(retrier.get("ErrorEquals"), list) or not retrier["ErrorEquals"]:
            raise _err(name, field, "'ErrorEquals' must be a non-empty list of error names")
        if retrier.get("BackoffRate", 2.0) < 1.0:
            raise _err(name, field, "'BackoffRate' must be at least 1.0")
        if not isinstance(retrier.get("MaxAttempts", 3), int) or retrier.get("MaxAttempts", 3) < 0:
            raise _err(name, field, "'MaxAttempts' must be a non-negative integer")
        if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            raise _err(name, field, "'JitterStrategy' must be FULL or NONE")
        unknown = set(retrier) - {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
        if unknown:
            raise _err(name, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    for i, catcher in enumerate(state.get("Catch", [])):
        field = f"Catch[{i}]"
        if not isinstance(catcher.get("ErrorEquals"), list) or not catcher["ErrorEquals"]:
            raise _err(name, field, "'ErrorEquals' must be a non-empty list of error names")
        if catcher.get("Next") not in states:
            raise _err(name, field, f"'Next' {catcher.get('Next')!r} is not a state in this scope")


def _validate_state(name: str, state: Any, scope: _Scope) -> None:
    if not isinstance(state, dict):
        raise _err(name, "Type", "a state must be a JSON object")
    kind = state.get("Type")
    state_type = scope.types.get(kind) if isinstance(kind, str) else None
    if state_type is None:
        raise _err(name, "Type", f"{kind!r} is not a state type this engine runs ({', '.join(scope.types)})")
    allowed = state_type.fields[scope.language]
    for field in state:
        if field in _UNSUPPORTED:
            raise _err(name, field, _UNSUPPORTED[field])
        if field not in allowed:
            raise _err(name, field, f"not a field of a {kind} state")
    if "Next" in allowed:
        _check_next(name, state, scope.states)
    if "Retry" in allowed:
        _validate_retry_catch(name, state, scope.states)
    if state_type.validator is not None:
        state_type.validator(name, state, scope)


def validate_task(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Task's Resource is one this engine runs; lambda:invoke names its function."""
    resource = state.get("Resource")
    if resource != LAMBDA_INVOKE and not (isinstance(resource, str) and LAMBDA_ARN.match(resource)):
        raise _err(name, "Resource", f"{resource!r} is not supported; use {LAMBDA_INVOKE} or a Lambda function ARN")
    if resource == LAMBDA_INVOKE:
        params = state.get("Parameters") or {}
        if "FunctionName" not in params and "FunctionName.$" not in params:
            raise _err(name, "Parameters", f"{LAMBDA_INVOKE} needs 'FunctionName'")


def validate_choice(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Choice has rules, each naming a state of its scope."""
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise _err(name, "Choices", "must be a non-empty list of rules")
    for i, rule in enumerate(choices):
        if not isinstance(rule, dict) or rule.get("Next") not in scope.states:
            raise _err(name, f"Choices[{i}]", f"'Next' {rule.get('Next') if isinstance(rule, dict) else rule!r} is not a state in this scope")
    if "Default" in state and state["Default"] not in scope.states:
        raise _err(name, "Default", f"{state['Default']!r} is not a state in this scope")


def validate_wait(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Wait has exactly one duration field."""
    given = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in state]
    if len(given) != 1:
        raise _err(name, "Seconds", "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")


def validate_parallel(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Parallel has branches, each a valid state machine."""
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise _err(name, "Branches", "must be a non-empty list of state machines")
    for i, branch in enumerate(branches):
        scope.validate_machine(branch, f"state {name!r} Branches[{i}]", scope.language)


def validate_map(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Map's processor, mode, reader, writer and thresholds."""
    processor = state.get("ItemProcessor", state.get("Iterator"))
    if processor is None:
        raise _err(name, "ItemProcessor", "missing")
    mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise _err(name, "ProcessorConfig.Mode", f"{mode!r} must be INLINE or DISTRIBUTED")
    execution_type = (processor.get("ProcessorConfig") or {}).get("ExecutionType", "STANDARD")
    if execution_type not in ("STANDARD", "EXPRESS"):
        raise _err(name, "ProcessorConfig.ExecutionType", f"{execution_type!r} must be STANDARD or EXPRESS")
    inner = {k: v for k, v in processor.items() if k != "ProcessorConfig"}
    scope.validate_machine(inner, f"state {name!r} ItemProcessor", scope.language)
    for field in ("ItemReader", "ResultWriter", "ItemBatcher", "ToleratedFailurePercentage", "ToleratedFailureCount",
                  "ToleratedFailurePercentagePath", "ToleratedFailureCountPath", "Label"):
        if field in state and mode != "DISTRIBUTED":
            raise _err(name, field, "only a DISTRIBUTED Map may use it")
    reader = state.get("ItemReader")
    if reader is not None:
        if reader.get("Resource") not in (S3_GET_OBJECT, S3_LIST_OBJECTS):
            raise _err(name, "ItemReader.Resource", f"{reader.get('Resource')!r} is not supported; use {S3_GET_OBJECT} or {S3_LIST_OBJECTS}")
        input_type = (reader.get("ReaderConfig") or {}).get("InputType", "JSON" if reader["Resource"] == S3_GET_OBJECT else None)
        if reader["Resource"] == S3_GET_OBJECT and input_type not in ("JSON", "CSV"):
            raise _err(name, "ItemReader.ReaderConfig.InputType", f"{input_type!r} is not supported; use JSON or CSV")
    writer = state.get("ResultWriter")
    if writer is not None and writer.get("Resource") != S3_PUT_OBJECT:
        raise _err(name, "ResultWriter.Resource", f"{writer.get('Resource')!r} is not supported; use {S3_PUT_OBJECT}")
    percentage = state.get("ToleratedFailurePercentage")
    if percentage is not None and not (0 <= percentage <= 100):
        raise _err(name, "ToleratedFailurePercentage", "must be between 0 and 100")
