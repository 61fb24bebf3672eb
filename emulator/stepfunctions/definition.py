"""Up-front validation of a definition: every mistake reported with its state and field.

Rules: https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html (fields
per state type), transforming-data.html (``QueryLanguage`` at the top and per state; a JSONata
state has ``Arguments``/``Output`` and none of the five JSONPath fields ``InputPath``,
``Parameters``, ``ResultSelector``, ``ResultPath``, ``OutputPath`` nor any ``...Path`` field; a
JSONata machine cannot have JSONPath states), workflow-variables.html (``Assign`` in Pass,
Task, Map, Parallel, Choice, Wait and in Catchers and Choice rules; names of at most 80
characters, ``$states`` reserved; a Parallel branch or inline Map iteration cannot assign a
variable of an outer scope), intrinsic-functions.html (escapes), state-wait.html (formats).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from emulator.contracts import aws
from emulator.stepfunctions.choice import check_rule
from emulator.stepfunctions.errors import DefinitionError
from emulator.stepfunctions.expressions import is_expression, unsupported_reference
from emulator.stepfunctions.paths import PathSyntaxError, check_path, is_definite
from emulator.stepfunctions.port import StateType, ValidationScope
from emulator.stepfunctions.templates import check_template
from emulator.stepfunctions.timestamps import parse_timestamp

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
S3_LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
S3_PUT_OBJECT = "arn:aws:states:::s3:putObject"
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$")

JSONPATH, JSONATA = "JSONPath", "JSONata"
_BASE = frozenset({"Type", "Comment", "QueryLanguage"})
_FLOW = frozenset({"Next", "End"})
_JP_IO = frozenset({"InputPath", "OutputPath"})
_RETRY = frozenset({"Retry", "Catch"})
_ASSIGN = frozenset({"Assign"})


def _fields(jsonpath: set[str], jsonata: set[str]) -> dict[str, frozenset[str]]:
    return {JSONPATH: _BASE | frozenset(jsonpath), JSONATA: _BASE | frozenset(jsonata)}


TASK_FIELDS = _fields(_FLOW | _JP_IO | _RETRY | _ASSIGN | {"Resource", "Parameters", "ResultSelector", "ResultPath",
                      "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Credentials"},
                      _FLOW | _RETRY | _ASSIGN | {"Resource", "Arguments", "Output", "TimeoutSeconds", "HeartbeatSeconds",
                                                  "Credentials"})
PASS_FIELDS = _fields(_FLOW | _JP_IO | _ASSIGN | {"Result", "ResultPath", "Parameters"}, _FLOW | _ASSIGN | {"Output"})
CHOICE_FIELDS = _fields(_JP_IO | _ASSIGN | {"Choices", "Default"}, _ASSIGN | {"Choices", "Default", "Output"})
WAIT_FIELDS = _fields(_FLOW | _JP_IO | _ASSIGN | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
                      _FLOW | _ASSIGN | {"Seconds", "Timestamp", "Output"})
SUCCEED_FIELDS = _fields(set(_JP_IO), {"Output"})
FAIL_FIELDS = _fields({"Error", "Cause", "ErrorPath", "CausePath"}, {"Error", "Cause"})
PARALLEL_FIELDS = _fields(_FLOW | _JP_IO | _RETRY | _ASSIGN | {"Branches", "Parameters", "ResultSelector", "ResultPath"},
                          _FLOW | _RETRY | _ASSIGN | {"Branches", "Arguments", "Output"})
_MAP_COMMON = {"ItemProcessor", "Iterator", "ItemReader", "ItemSelector", "ItemBatcher", "MaxConcurrency",
               "ToleratedFailurePercentage", "ToleratedFailureCount", "ResultWriter", "Label"}
MAP_FIELDS = _fields(_FLOW | _JP_IO | _RETRY | _ASSIGN | _MAP_COMMON | {
    "ItemsPath", "Parameters", "MaxConcurrencyPath", "ToleratedFailurePercentagePath", "ToleratedFailureCountPath",
    "ResultSelector", "ResultPath"}, _FLOW | _RETRY | _ASSIGN | _MAP_COMMON | {"Items", "Output"})
# Fields of one language that the other does not have: named in the error.
_JSONPATH_ONLY = {"InputPath", "Parameters", "ResultSelector", "ResultPath", "OutputPath", "ItemsPath", "Result",
                  "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
                  "ToleratedFailurePercentagePath", "ToleratedFailureCountPath", "ErrorPath", "CausePath"}
_JSONATA_ONLY = {"Arguments", "Output", "Items"}
# Recognised AWS features this engine does not run: named so the error is explicit.
_UNSUPPORTED = {
    "Credentials": "cross-account 'Credentials' are not supported",
}
MAX_VARIABLE_NAME = 80
MAX_STATE_NAME = 80
# The top-level fields of a definition (states-language.net "Top-level fields"; QueryLanguage:
# https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html).
TOP_LEVEL_FIELDS = frozenset({"Comment", "StartAt", "States", "Version", "TimeoutSeconds", "QueryLanguage"})


class _Scope:
    """The states of one (sub-)machine, for validators (see ``port.ValidationScope``)."""

    def __init__(self, states: Mapping[str, Any], types: Mapping[str, StateType], language: str,
                 outer: frozenset[str], top: str) -> None:
        self.states = states
        self.types = types
        self.language = language
        self.top = top  # the state machine's QueryLanguage
        self.outer = outer  # variables assigned in enclosing scopes
        self.assigned = frozenset(n for s in states.values() if isinstance(s, dict) for n in _assigned_names(s))

    def validate_machine(self, machine: Any, where: str, language: str, inherit_variables: bool = True) -> None:
        # Nested states inherit the state machine's QueryLanguage, not the enclosing state's.
        validate_machine(machine, self.types, where, self.top,
                         self.outer | self.assigned if inherit_variables else frozenset(), nested=True)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _assigned_names(state: dict[str, Any]) -> list[str]:
    blocks = [state.get("Assign")] + [c.get("Assign") for c in _list(state.get("Catch")) if isinstance(c, dict)]
    blocks += [r.get("Assign") for r in _list(state.get("Choices")) if isinstance(r, dict)]
    return [k[:-2] if k.endswith(".$") else k for b in blocks if isinstance(b, dict) for k in b]


def _err(state: str, field: str, why: str) -> DefinitionError:
    return DefinitionError(f"state {state!r}: field {field!r}: {why}")


def validate_machine(machine: Any, types: Mapping[str, StateType], where: str = "the state machine",
                     language: str | None = None, outer: frozenset[str] = frozenset(), nested: bool = False) -> None:
    """Validate a top-level definition or a nested Branch/ItemProcessor.

    Raises:
        DefinitionError: naming the state and field that are wrong.
    """
    if not isinstance(machine, dict):
        raise DefinitionError(f"{where} must be a JSON object")
    if language is None:  # the top level
        unknown = sorted(set(machine) - TOP_LEVEL_FIELDS)
        if unknown:
            raise DefinitionError(f"{where}: field {unknown[0]!r} is not supported by Step Functions "
                                  f"(top-level fields: {', '.join(sorted(TOP_LEVEL_FIELDS))})")
        language = machine.get("QueryLanguage", JSONPATH)
        if language not in (JSONPATH, JSONATA):
            raise DefinitionError(f"{where}: field 'QueryLanguage': {language!r} must be JSONPath or JSONata")
        duplicate = _duplicate_state_name(machine)
        if duplicate:
            raise _err(duplicate, "name", "state names must be unique within the whole state machine, "
                                          "including Parallel branches and Map processors")
    if nested and "QueryLanguage" in machine:
        raise DefinitionError(f"{where}: field 'QueryLanguage' is not supported here; set it on the states")
    if "Comment" in machine and not isinstance(machine["Comment"], str):
        raise DefinitionError(f"{where}: field 'Comment' must be a string")
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: field 'States' must be a non-empty object")
    start = machine.get("StartAt")
    if not isinstance(start, str) or start not in states:
        raise DefinitionError(f"{where}: field 'StartAt': {start!r} is not a state (states: {', '.join(states)})")
    timeout = machine.get("TimeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise DefinitionError(f"{where}: field 'TimeoutSeconds' must be a positive integer")
    for name, state in states.items():
        if len(name) > MAX_STATE_NAME:
            raise _err(name[:40] + "...", "name", f"state names are at most {MAX_STATE_NAME} characters")
        _validate_state(name, state, _Scope(states, types, _state_language(name, state, language), outer, language))
    if not any(isinstance(st, dict) and (st.get("End") is True or st.get("Type") in ("Succeed", "Fail"))
               for st in states.values()):
        # AWS: MISSING_END_STATE, a workflow that can never end.
        raise DefinitionError(f"{where}: no state ends it (give a state \"End\": true, or a Succeed or Fail state)")
    unreachable = [name for name in states if name not in _reachable(start, states)]
    if unreachable:
        raise _err(unreachable[0], "name", f"the state is not reachable from StartAt {start!r} in {where}")


def _duplicate_state_name(machine: Any) -> str | None:
    """The first state name used twice anywhere in the machine (states-language.net: state names
    are unique within the whole state machine), or None."""
    seen: set[str] = set()
    pending = [machine]
    while pending:
        current = pending.pop()
        states = current.get("States") if isinstance(current, dict) else None
        if not isinstance(states, dict):
            continue
        for name, state in states.items():
            if name in seen:
                return name
            seen.add(name)
            if isinstance(state, dict):
                pending.extend(_list(state.get("Branches")))
                pending.extend(s for s in (state.get("ItemProcessor"), state.get("Iterator")) if isinstance(s, dict))
    return None


def _reachable(start: str, states: Mapping[str, Any]) -> set[str]:
    """Names reachable from ``start`` through Next, Default, Choices[].Next and Catch[].Next."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        todo += [state.get("Next"), state.get("Default")]
        todo += [r.get("Next") for r in _list(state.get("Choices")) + _list(state.get("Catch")) if isinstance(r, dict)]
        todo = [t for t in todo if isinstance(t, str)]
    return seen


def _state_language(name: str, state: Any, inherited: str) -> str:
    if not isinstance(state, dict) or "QueryLanguage" not in state:
        return inherited
    language = state["QueryLanguage"]
    if language not in (JSONPATH, JSONATA):
        raise _err(name, "QueryLanguage", f"{language!r} must be JSONPath or JSONata")
    if inherited == JSONATA and language == JSONPATH:
        raise _err(name, "QueryLanguage", "a state cannot use JSONPath when the state machine's QueryLanguage is JSONata")
    return language


def _check_next(name: str, state: dict, states: Mapping[str, Any]) -> None:
    terminal = state.get("End") is True
    if "Next" in state and terminal:
        raise _err(name, "End", "a state cannot have both 'Next' and 'End'")
    if "End" in state and not isinstance(state["End"], bool):
        raise _err(name, "End", "must be true or false")
    if not terminal:
        if "Next" not in state:
            raise _err(name, "Next", "missing: give 'Next' or \"End\": true")
        if not isinstance(state["Next"], str) or state["Next"] not in states:
            raise _err(name, "Next", f"{state['Next']!r} is not a state in this scope")


def _positive_int(value: Any, allow_zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)


def _validate_retry_catch(name: str, state: dict, scope: _Scope) -> None:
    for field in ("Retry", "Catch"):
        if field in state and not isinstance(state[field], list):
            raise _err(name, field, "must be a list")
    for kind in ("Retry", "Catch"):
        entries = state.get(kind, [])
        for i, entry in enumerate(entries):
            errors = entry.get("ErrorEquals") if isinstance(entry, dict) else None
            if isinstance(errors, list) and "States.ALL" in errors and (len(errors) > 1 or i != len(entries) - 1):
                raise _err(name, f"{kind}[{i}]", "States.ALL must appear alone in ErrorEquals, in the last "
                                                 f"{'Retrier' if kind == 'Retry' else 'Catcher'}")
    for i, retrier in enumerate(state.get("Retry", [])):
        field = f"Retry[{i}]"
        if not isinstance(retrier, dict) or not isinstance(retrier.get("ErrorEquals"), list) or not retrier["ErrorEquals"]:
            raise _err(name, field, "'ErrorEquals' must be a non-empty list of error names")
        if "IntervalSeconds" in retrier and not _positive_int(retrier["IntervalSeconds"]):
            raise _err(name, field, "'IntervalSeconds' must be a positive integer")
        if "MaxDelaySeconds" in retrier and not _positive_int(retrier["MaxDelaySeconds"]):
            raise _err(name, field, "'MaxDelaySeconds' must be a positive integer")
        rate = retrier.get("BackoffRate", 2.0)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 1.0:
            raise _err(name, field, "'BackoffRate' must be a number of at least 1.0")
        if not _positive_int(retrier.get("MaxAttempts", 3), allow_zero=True):
            raise _err(name, field, "'MaxAttempts' must be a non-negative integer")
        if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            raise _err(name, field, "'JitterStrategy' must be FULL or NONE")
        unknown = set(retrier) - {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
        if unknown:
            raise _err(name, field, f"unknown field(s) {', '.join(sorted(unknown))}")
    allowed = {"ErrorEquals", "Next", "Comment", "Assign"} | ({"ResultPath"} if scope.language == JSONPATH else {"Output"})
    for i, catcher in enumerate(state.get("Catch", [])):
        field = f"Catch[{i}]"
        if not isinstance(catcher, dict) or not isinstance(catcher.get("ErrorEquals"), list) or not catcher["ErrorEquals"]:
            raise _err(name, field, "'ErrorEquals' must be a non-empty list of error names")
        if not isinstance(catcher.get("Next"), str) or catcher["Next"] not in scope.states:
            raise _err(name, field, f"'Next' {catcher.get('Next')!r} is not a state in this scope")
        unknown = set(catcher) - allowed
        if unknown:
            raise _err(name, field, f"field(s) {', '.join(sorted(unknown))} not allowed in a {scope.language} Catcher")
        if "ResultPath" in catcher:
            _check_reference_path(name, f"{field}.ResultPath", catcher["ResultPath"])
        if "Assign" in catcher:
            _check_assign(name, f"{field}.Assign", catcher["Assign"], scope)
        if "Output" in catcher:
            _check_expressions(name, f"{field}.Output", catcher["Output"])


def _check_reference_path(name: str, field: str, path: Any) -> None:
    if path is None:
        return
    try:
        check_path(path)
    except PathSyntaxError as exc:
        raise _err(name, field, str(exc)) from exc
    if not path.startswith("$") or path.startswith("$$") or (len(path) > 1 and path[1] not in ".[") or not is_definite(path):
        raise _err(name, field, f"{path!r} must be a reference path (a definite path on the input, like $.a.b)")


def _check_paths(name: str, state: dict[str, Any]) -> None:
    """JSONPath fields that hold paths must parse; ResultPath must be a reference path."""
    for field in ("InputPath", "OutputPath", "ItemsPath", "SecondsPath", "TimestampPath", "TimeoutSecondsPath",
                  "HeartbeatSecondsPath", "MaxConcurrencyPath", "ToleratedFailurePercentagePath",
                  "ToleratedFailureCountPath"):
        if state.get(field) is not None:
            try:
                check_path(state[field])
            except PathSyntaxError as exc:
                raise _err(name, field, str(exc)) from exc
    if "ResultPath" in state:
        _check_reference_path(name, "ResultPath", state["ResultPath"])
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            problem = check_template(state[field])
            if problem:
                raise _err(name, field, problem)


def _check_expressions(name: str, field: str, value: Any) -> None:
    """Every ``{% %}`` string in ``value`` must be a valid JSONata expression using only what a
    Step Functions expression can reach (no top-level names, no ``$$``; ``$states.errorOutput``
    only in a Catcher), as AWS checks when the definition is created."""
    if is_expression(value):
        try:
            problem = unsupported_reference(value, in_catcher=field.startswith("Catch["))
        except ValueError as exc:
            raise _err(name, field, str(exc)) from exc
        if problem:
            raise _err(name, field, f"{value!r}: {problem}")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_expressions(name, f"{field}.{key}", inner)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _check_expressions(name, f"{field}[{i}]", inner)


def _check_assign(name: str, field: str, assign: Any, scope: _Scope) -> None:
    if not isinstance(assign, dict):
        raise _err(name, field, "must be a JSON object of variable names and values")
    for key in assign:
        variable = key[:-2] if scope.language == JSONPATH and key.endswith(".$") else key
        if not variable.isidentifier() or len(variable) > MAX_VARIABLE_NAME:
            raise _err(name, field, f"{variable!r} is not a valid variable name (a letter or _ then letters, digits "
                                    f"or _, at most {MAX_VARIABLE_NAME} characters)")
        if variable == "states":
            raise _err(name, field, "'states' is reserved ($states); choose another variable name")
        if variable in scope.outer:
            raise _err(name, field, f"${variable} is assigned in an outer scope; a Parallel branch or Map iteration "
                                    "can read it but not assign it")
    if scope.language == JSONPATH:
        problem = check_template(assign)
        if problem:
            raise _err(name, field, problem)
    else:
        _check_expressions(name, field, assign)


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
            if scope.language == JSONATA and field in _JSONPATH_ONLY:
                raise _err(name, field, "a JSONPath field; a JSONata state uses Arguments and Output instead")
            if scope.language == JSONPATH and field in _JSONATA_ONLY:
                raise _err(name, field, "a JSONata field; set \"QueryLanguage\": \"JSONata\" to use it")
            raise _err(name, field, f"not a field of a {kind} state")
    if "Comment" in state and not isinstance(state["Comment"], str):
        raise _err(name, "Comment", "must be a string")
    if "Next" in allowed:
        _check_next(name, state, scope.states)
    if "Retry" in allowed:
        _validate_retry_catch(name, state, scope)
    if "Assign" in state:
        _check_assign(name, "Assign", state["Assign"], scope)
    if scope.language == JSONPATH:
        _check_paths(name, state)
    else:
        for field, value in state.items():
            if field not in ("Branches", "ItemProcessor", "Iterator", "Assign", "Catch"):
                _check_expressions(name, field, value)
    if state_type.validator is not None:
        state_type.validator(name, state, scope)


def validate_task(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Task's Resource is one this engine runs; lambda:invoke names its function; timeouts are positive integers."""
    resource = state.get("Resource")
    if resource != LAMBDA_INVOKE and not (isinstance(resource, str) and LAMBDA_ARN.match(resource)):
        raise _err(name, "Resource", f"{resource!r} is not supported (optimized integrations other than Lambda, "
                                     f"and .sync/.waitForTaskToken patterns, are not run here); use {LAMBDA_INVOKE} "
                                     "or a Lambda function ARN")
    if resource == LAMBDA_INVOKE:
        params = state.get("Parameters" if scope.language == JSONPATH else "Arguments")
        if is_expression(params):
            return
        params = params or {}
        if not isinstance(params, dict):
            raise _err(name, "Parameters" if scope.language == JSONPATH else "Arguments", "must be a JSON object")
        if "FunctionName" not in params and "FunctionName.$" not in params:
            raise _err(name, "Parameters" if scope.language == JSONPATH else "Arguments",
                       f"{LAMBDA_INVOKE} needs 'FunctionName'")
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state and not is_expression(state[field]) and not _positive_int(state[field]):
            raise _err(name, field, "must be a positive integer")
        if field in state and f"{field}Path" in state:
            raise _err(name, f"{field}Path", f"give {field} or {field}Path, not both")
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if _positive_int(timeout) and _positive_int(heartbeat) and heartbeat >= timeout:
        raise _err(name, "HeartbeatSeconds", "must be smaller than TimeoutSeconds")


def validate_choice(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Choice has rules, each naming a state of its scope (Condition in JSONata, Variable in JSONPath)."""
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise _err(name, "Choices", "must be a non-empty list of rules")
    for i, rule in enumerate(choices):
        if not isinstance(rule, dict) or not isinstance(rule.get("Next"), str) or rule["Next"] not in scope.states:
            raise _err(name, f"Choices[{i}]", f"'Next' {rule.get('Next') if isinstance(rule, dict) else rule!r} is not a state in this scope")
        if scope.language == JSONATA:
            if "Condition" not in rule:
                raise _err(name, f"Choices[{i}]", "a JSONata Choice rule needs 'Condition'")
            unknown = set(rule) - {"Condition", "Next", "Assign", "Output", "Comment"}
            if unknown:
                raise _err(name, f"Choices[{i}]", f"field(s) {', '.join(sorted(unknown))} not allowed in a JSONata Choice rule")
            _check_expressions(name, f"Choices[{i}]", {k: v for k, v in rule.items() if k != "Assign"})
        elif "Condition" in rule or "Output" in rule:
            raise _err(name, f"Choices[{i}]", "'Condition'/'Output' are JSONata fields; JSONPath rules use 'Variable'")
        else:
            problem = check_rule(rule, top=True)
            if problem:
                raise _err(name, f"Choices[{i}]", problem)
        if "Assign" in rule:
            _check_assign(name, f"Choices[{i}].Assign", rule["Assign"], scope)  # type: ignore[arg-type]
    if "Default" in state and (not isinstance(state["Default"], str) or state["Default"] not in scope.states):
        raise _err(name, "Default", f"{state['Default']!r} is not a state in this scope")




def validate_wait(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Wait has exactly one duration field; literal Seconds and Timestamp are well-formed."""
    given = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in state]
    if len(given) != 1:
        raise _err(name, "Seconds", "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")
    seconds = state.get("Seconds")
    if "Seconds" in state and not is_expression(seconds) and not (
            _positive_int(seconds, allow_zero=True) and seconds <= aws.MAX_WAIT_SECONDS):
        raise _err(name, "Seconds", f"must be an integer from 0 to {aws.MAX_WAIT_SECONDS}")
    stamp = state.get("Timestamp")
    if "Timestamp" in state and not is_expression(stamp) and parse_timestamp(stamp) is None:
        raise _err(name, "Timestamp", f"{stamp!r} is not an RFC 3339 timestamp such as 2016-03-14T01:59:00Z")


# The intrinsics that return a string, the only ones ErrorPath/CausePath accept (state-fail.html).
FAIL_PATH_INTRINSICS = ("States.Format", "States.JsonToString", "States.ArrayGetItem", "States.Base64Encode",
                        "States.Base64Decode", "States.Hash", "States.UUID")


def validate_fail(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Fail's Error/Cause and ErrorPath/CausePath exclude each other; paths parse; only string intrinsics."""
    for field in ("Error", "Cause"):
        if field in state and f"{field}Path" in state:
            raise _err(name, f"{field}Path", f"give {field} or {field}Path, not both")
        path = state.get(f"{field}Path")
        if isinstance(path, str) and path.startswith("States.") and not path.startswith(tuple(f + "(" for f in FAIL_PATH_INTRINSICS)):
            raise _err(name, f"{field}Path", f"only intrinsics that return a string may be used: {', '.join(FAIL_PATH_INTRINSICS)}")
        if path is not None:
            problem = check_template({"v.$": path})
            if problem:
                raise _err(name, f"{field}Path", problem.replace("field 'v.$': ", ""))


def validate_parallel(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Parallel has branches, each a valid state machine."""
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise _err(name, "Branches", "must be a non-empty list of state machines")
    for i, branch in enumerate(branches):
        scope.validate_machine(branch, f"state {name!r} Branches[{i}]", scope.language)


def validate_map(name: str, state: dict[str, Any], scope: ValidationScope) -> None:
    """A Map's processor, mode, reader, writer and thresholds."""
    # ItemProcessor and ItemSelector replace the legacy Iterator and Parameters (state-map.html).
    for new_field, legacy in (("ItemProcessor", "Iterator"), ("ItemSelector", "Parameters")):
        if new_field in state and legacy in state:
            raise _err(name, legacy, f"give {new_field} or the legacy {legacy}, not both")
    processor = state.get("ItemProcessor", state.get("Iterator"))
    if not isinstance(processor, dict):
        raise _err(name, "ItemProcessor", "missing, or not a JSON object")
    if not isinstance(processor.get("ProcessorConfig") or {}, dict):
        raise _err(name, "ProcessorConfig", "must be a JSON object")
    mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise _err(name, "ProcessorConfig.Mode", f"{mode!r} must be INLINE or DISTRIBUTED")
    execution_type = (processor.get("ProcessorConfig") or {}).get("ExecutionType", "STANDARD")
    if execution_type not in ("STANDARD", "EXPRESS"):
        raise _err(name, "ProcessorConfig.ExecutionType", f"{execution_type!r} must be STANDARD or EXPRESS")
    inner = {k: v for k, v in processor.items() if k != "ProcessorConfig"}
    scope.validate_machine(inner, f"state {name!r} ItemProcessor", scope.language, mode != "DISTRIBUTED")
    for field in ("ItemReader", "ResultWriter", "ItemBatcher", "ToleratedFailurePercentage", "ToleratedFailureCount",
                  "ToleratedFailurePercentagePath", "ToleratedFailureCountPath", "Label"):
        if field in state and mode != "DISTRIBUTED":
            raise _err(name, field, "only a DISTRIBUTED Map may use it")
    _validate_reader(name, state.get("ItemReader"))
    _validate_writer(name, state.get("ResultWriter"))
    wrong = "Parameters" if scope.language == JSONATA else "Arguments"
    for field in ("ItemReader", "ResultWriter"):
        if isinstance(state.get(field), dict) and wrong in state[field]:
            raise _err(name, f"{field}.{wrong}", f"not a field of a {scope.language} {field} "
                                                 f"(use {'Arguments' if wrong == 'Parameters' else 'Parameters'})")
    percentage = state.get("ToleratedFailurePercentage")
    if percentage is not None and not is_expression(percentage) and (
            not _is_number(percentage) or not 0 <= percentage <= 100):
        raise _err(name, "ToleratedFailurePercentage", "must be a number between 0 and 100")
    for field in ("ToleratedFailureCount", "MaxConcurrency"):
        value = state.get(field)
        if value is not None and not is_expression(value) and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0):
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
    if not isinstance(reader, dict):
        raise _err(name, "ItemReader", "must be a JSON object")
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
    if "MaxItems" in config and not is_expression(config["MaxItems"]) and (
            not isinstance(config["MaxItems"], int) or config["MaxItems"] < 0):
        raise _err(name, "ItemReader.ReaderConfig.MaxItems", "must be a non-negative integer")


def _validate_writer(name: str, writer: Any) -> None:
    if writer is None:
        return
    if not isinstance(writer, dict):
        raise _err(name, "ResultWriter", "must be a JSON object")
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
