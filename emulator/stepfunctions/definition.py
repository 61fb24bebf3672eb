"""Up-front validation of a definition: every mistake reported with its state and field."""

from __future__ import annotations

import re
from typing import Any

from emulator.stepfunctions.errors import DefinitionError

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$")

_COMMON = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath"}
_FIELDS = {
    "Task": _COMMON | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch",
                       "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath"},
    "Pass": _COMMON | {"Result", "ResultPath", "Parameters"},
    "Choice": {"Type", "Comment", "InputPath", "OutputPath", "Choices", "Default"},
    "Wait": _COMMON | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
    "Fail": {"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"},
    "Parallel": _COMMON | {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Map": _COMMON | {"ItemProcessor", "Iterator", "ItemsPath", "ItemReader", "ItemSelector", "Parameters",
                      "ItemBatcher", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage",
                      "ToleratedFailurePercentagePath", "ToleratedFailureCount", "ToleratedFailureCountPath",
                      "ResultWriter", "ResultSelector", "ResultPath", "Retry", "Catch", "Label"},
}
# Recognised AWS features this engine does not run: named so the error is explicit.
_UNSUPPORTED = {
    "QueryLanguage": "JSONata is not supported; use the JSONPath query language",
    "Arguments": "JSONata 'Arguments' is not supported; use 'Parameters'",
    "Output": "JSONata 'Output' is not supported; use 'OutputPath'/'ResultSelector'",
    "Assign": "variables ('Assign') are not supported",
    "Credentials": "cross-account 'Credentials' are not supported",
}


def _err(state: str, field: str, why: str) -> DefinitionError:
    return DefinitionError(f"state {state!r}: field {field!r}: {why}")


def validate_machine(machine: Any, where: str = "the state machine") -> None:
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
    for name, state in states.items():
        _validate_state(name, state, states)


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


def _validate_state(name: str, state: Any, states: dict) -> None:
    if not isinstance(state, dict):
        raise _err(name, "Type", "a state must be a JSON object")
    kind = state.get("Type")
    if kind not in _FIELDS:
        raise _err(name, "Type", f"{kind!r} is not a state type this engine runs ({', '.join(_FIELDS)})")
    for field in state:
        if field in _UNSUPPORTED:
            raise _err(name, field, _UNSUPPORTED[field])
        if field not in _FIELDS[kind]:
            raise _err(name, field, f"not a field of a {kind} state")
    if kind not in ("Choice", "Succeed", "Fail"):
        _check_next(name, state, states)
    if kind in ("Task", "Parallel", "Map"):
        _validate_retry_catch(name, state, states)
    if kind == "Task":
        resource = state.get("Resource")
        if resource != LAMBDA_INVOKE and not (isinstance(resource, str) and LAMBDA_ARN.match(resource)):
            raise _err(name, "Resource", f"{resource!r} is not supported; use {LAMBDA_INVOKE} or a Lambda function ARN")
        if resource == LAMBDA_INVOKE:
            params = state.get("Parameters") or {}
            if "FunctionName" not in params and "FunctionName.$" not in params:
                raise _err(name, "Parameters", f"{LAMBDA_INVOKE} needs 'FunctionName'")
    elif kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise _err(name, "Choices", "must be a non-empty list of rules")
        for i, rule in enumerate(choices):
            if rule.get("Next") not in states:
                raise _err(name, f"Choices[{i}]", f"'Next' {rule.get('Next')!r} is not a state in this scope")
        if "Default" in state and state["Default"] not in states:
            raise _err(name, "Default", f"{state['Default']!r} is not a state in this scope")
    elif kind == "Wait":
        given = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in state]
        if len(given) != 1:
            raise _err(name, "Seconds", "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise _err(name, "Branches", "must be a non-empty list of state machines")
        for i, branch in enumerate(branches):
            validate_machine(branch, f"state {name!r} Branches[{i}]")
    elif kind == "Map":
        _validate_map(name, state)


def _validate_map(name: str, state: dict) -> None:
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
    validate_machine(inner, f"state {name!r} ItemProcessor")
    for field in ("ItemReader", "ResultWriter", "ItemBatcher", "ToleratedFailurePercentage", "ToleratedFailureCount",
                  "ToleratedFailurePercentagePath", "ToleratedFailureCountPath", "Label"):
        if field in state and mode != "DISTRIBUTED":
            raise _err(name, field, "only a DISTRIBUTED Map may use it")
    _validate_reader(name, state.get("ItemReader"))
    _validate_writer(name, state.get("ResultWriter"))
    percentage = state.get("ToleratedFailurePercentage")
    if percentage is not None and (not _is_number(percentage) or not 0 <= percentage <= 100):
        raise _err(name, "ToleratedFailurePercentage", "must be a number between 0 and 100")
    for field in ("ToleratedFailureCount", "MaxConcurrency"):
        value = state.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _err(name, field, "must be a non-negative integer")
    label = state.get("Label")
    if label is not None and (not isinstance(label, str) or not label or len(label) > MAX_LABEL_LENGTH
                              or _LABEL_FORBIDDEN.search(label)):
        raise _err(name, "Label", f"must be 1-{MAX_LABEL_LENGTH} characters without whitespace, control "
                                  "characters or any of < > { } [ ] ? * \" # % \\ ^ | ~ ` $ & , ; :")


# Map Label: up to 40 characters; no whitespace, brackets, wildcards, special or control characters
# (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html, "Label").
MAX_LABEL_LENGTH = 40
_LABEL_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:\x00-\x1f\x7f-\x9f]")
READER_INPUT_TYPES = ("JSON", "JSONL", "CSV", "MANIFEST")
WRITER_OUTPUT_TYPES = ("JSON", "JSONL")
WRITER_TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_reader(name: str, reader: Any) -> None:
    if reader is None:
        return
    if reader.get("Resource") not in (S3_GET_OBJECT, S3_LIST_OBJECTS):
        raise _err(name, "ItemReader.Resource", f"{reader.get('Resource')!r} is not supported; use {S3_GET_OBJECT} or {S3_LIST_OBJECTS}")
    config = reader.get("ReaderConfig") or {}
    if reader["Resource"] == S3_GET_OBJECT:
        input_type = config.get("InputType", "JSON")
        if input_type not in READER_INPUT_TYPES:
            raise _err(name, "ItemReader.ReaderConfig.InputType",
                       f"{input_type!r} is not supported; use {', '.join(READER_INPUT_TYPES)}")
        location = config.get("CSVHeaderLocation", "FIRST_ROW")
        if input_type == "CSV" and location not in ("FIRST_ROW", "GIVEN"):
            raise _err(name, "ItemReader.ReaderConfig.CSVHeaderLocation", "must be FIRST_ROW or GIVEN")
        if input_type == "CSV" and location == "GIVEN":
            headers = config.get("CSVHeaders")
            if not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers):
                raise _err(name, "ItemReader.ReaderConfig.CSVHeaders", "CSVHeaderLocation GIVEN needs a non-empty list of column names")
            duplicates = sorted({h for h in headers if headers.count(h) > 1})
            if duplicates:
                raise _err(name, "ItemReader.ReaderConfig.CSVHeaders", f"repeats {', '.join(map(repr, duplicates))}; column names must be unique")
    if "MaxItems" in config and "MaxItemsPath" in config:
        raise _err(name, "ItemReader.ReaderConfig.MaxItems", "give MaxItems or MaxItemsPath, not both")
    if "MaxItems" in config and (not isinstance(config["MaxItems"], int) or config["MaxItems"] < 0):
        raise _err(name, "ItemReader.ReaderConfig.MaxItems", "must be a non-negative integer")


def _validate_writer(name: str, writer: Any) -> None:
    if writer is None:
        return
    config = writer.get("WriterConfig")
    if "Resource" not in writer and config is None:
        raise _err(name, "ResultWriter", f"needs 'Resource' ({S3_PUT_OBJECT}) with 'Parameters', or a 'WriterConfig'")
    if "Resource" in writer and writer["Resource"] != S3_PUT_OBJECT:
        raise _err(name, "ResultWriter.Resource", f"{writer.get('Resource')!r} is not supported; use {S3_PUT_OBJECT}")
    if config is not None:
        if config.get("OutputType", "JSON") not in WRITER_OUTPUT_TYPES:
            raise _err(name, "ResultWriter.WriterConfig.OutputType", f"{config.get('OutputType')!r} must be JSON or JSONL")
        if config.get("Transformation", "NONE") not in WRITER_TRANSFORMATIONS:
            raise _err(name, "ResultWriter.WriterConfig.Transformation",
                       f"{config.get('Transformation')!r} must be NONE, COMPACT or FLATTEN")
