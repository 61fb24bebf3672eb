"""JSONPath as Step Functions uses it: paths, reference paths, InputPath/OutputPath, ResultPath.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html):
paths start with ``$`` (the data), ``$$`` (the context object) or ``$name`` (a workflow
variable, https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html); a
definite path that is missing is a ``States.Runtime`` error, an indefinite one (``[*]``,
slices, filters ``[?(@.x == 1)]``, deep scan ``..``) yields an array, empty when nothing
matches. A path may end in one of Jayway JsonPath's functions (the implementation AWS uses):
``length()`` (elements of the array, or matches, it selects), ``min()``, ``max()``, ``avg()``,
``sum()``, ``stddev()`` (numbers, as doubles), ``first()``, ``last()``, ``keys()``. ``ResultPath`` is a reference path (definite, on the data) and is applied to a copy of
the raw input. Filters and deep scans are evaluated with ``jsonpath-ng`` (its extended parser),
a maintained JSONPath library, rather than by hand.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonpath_ng.ext

from emulator.stepfunctions.errors import RESULT_PATH_MATCH_FAILURE, RUNTIME, StatesError

_TOKEN = re.compile(r"""\.(?P<name>[^.\[\]]+)|\[\s*(?:'(?P<qs>[^']*)'|"(?P<qd>[^"]*)"|(?P<idx>-?\d+)|(?P<star>\*)|(?P<slice>-?\d*:-?\d*))\s*\]|\.\*""")


class PathSyntaxError(ValueError):
    """A path that cannot be parsed."""


_VARIABLE = re.compile(r"\$([^\W\d]\w*)")
# Syntax the step parser leaves to jsonpath-ng: deep scan, filters, unions, functions.
_EXTENDED = re.compile(r"\.\.|\[\s*\?|\[[^\]]*,|@")
_FUNCTION = re.compile(r"\.(length|min|max|avg|sum|stddev|first|last|keys)\(\)$")


def _strip_length(path: str) -> tuple[str, str | None]:
    """``(path without a trailing Jayway function, the function's name or None)``."""
    m = _FUNCTION.search(path) if isinstance(path, str) else None
    return (path[:m.start()], m.group(1)) if m else (path, None)


def _apply_function(name: str, path: str, value: Any) -> Any:
    """A Jayway path function applied to what the path selected."""
    if name == "length" and isinstance(value, (list, dict, str)):
        return len(value)
    if name == "keys" and isinstance(value, dict):
        return list(value)
    if name in ("first", "last") and isinstance(value, list) and value:
        return value[0] if name == "first" else value[-1]
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        mean = sum(value) / len(value)
        numbers = {"min": min(value), "max": max(value), "sum": sum(value), "avg": mean,
                   "stddev": (sum((v - mean) ** 2 for v in value) / len(value)) ** 0.5}
        if name in numbers:
            return float(numbers[name])  # Jayway's numeric functions return doubles
    raise StatesError(RUNTIME, f"The JSONPath '{path}': {name}() cannot be applied to {_short(value)}")


def split_root(path: str) -> tuple[str, str]:
    """``(root, rest)``: root is ``$$`` (context), ``$`` (data) or ``$name`` (a variable)."""
    if not isinstance(path, str):
        raise PathSyntaxError(f"path {path!r} must be a string")
    if path.startswith("$$"):
        return "$$", path[2:]
    m = _VARIABLE.match(path)
    if m:
        return m.group(0), path[m.end():]
    if path.startswith("$"):
        return "$", path[1:]
    raise PathSyntaxError(f"path {path!r} must start with '$'")


def parse(path: str) -> tuple[str, list[tuple[str, Any]]]:
    """Split ``$.a['b'][0][*]`` into its root (``$``, ``$$``, ``$var``) and steps."""
    root, rest = split_root(path)
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if not m:
            raise PathSyntaxError(f"cannot parse {path!r} at {rest[pos:]!r}")
        if m.group(0) == ".*" or m.group("star"):
            steps.append(("star", None))
        elif m.group("name") is not None:
            steps.append(("key", m.group("name")))
        elif m.group("qs") is not None or m.group("qd") is not None:
            steps.append(("key", m.group("qs") if m.group("qs") is not None else m.group("qd")))
        elif m.group("idx") is not None:
            steps.append(("index", int(m.group("idx"))))
        else:
            lo, hi = m.group("slice").split(":")
            steps.append(("slice", (int(lo) if lo else None, int(hi) if hi else None)))
        pos = m.end()
    return root, steps


def is_definite(path: str) -> bool:
    """Whether the path names one value (no wildcard, slice, filter or deep scan)."""
    try:
        path, function = _strip_length(path)
        if function:
            return True
        _, rest = split_root(path)
        if _EXTENDED.search(rest):
            return False
        return all(kind in ("key", "index") for kind, _ in parse(path)[1])
    except PathSyntaxError:
        return False


def check_path(path: str) -> None:
    """Raise PathSyntaxError when ``path`` is not a path this engine evaluates."""
    path, _ = _strip_length(path)
    root, rest = split_root(path)
    if _EXTENDED.search(rest):
        try:
            jsonpath_ng.ext.parse("$" + rest)
        except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises several exception types
            raise PathSyntaxError(f"cannot parse {path!r}: {exc}") from exc
    else:
        parse(path)


def _root_value(root: str, path: str, data: Any, context: Any, variables: Any) -> Any:
    if root == "$$":
        return context
    if root == "$":
        return data
    try:
        return variables.get(root[1:]) if variables is not None else _missing_variable(path)
    except KeyError:
        return _missing_variable(path)


def _missing_variable(path: str) -> Any:
    raise StatesError(RUNTIME, f"The JSONPath '{path}' references a variable that is not defined")


def evaluate(path: str, data: Any, context: Any = None, variables: Any = None, field: str | None = None,
             past_end_is_null: bool = False) -> Any:
    """The value at ``path`` in ``data`` (``$``), ``context`` (``$$``) or a variable (``$name``).

    A definite path that does not exist raises States.Runtime, as AWS does; an indefinite
    one (wildcard, slice, filter, deep scan) gives the list of what matched, ``[]`` when
    nothing did.

    ``field`` names the field the path came from, for AWS's error cause ("The JSONPath '$.x'
    specified for the field 'x.$' could not be found in the input '{...}'").
    ``past_end_is_null``: an index past the end of an array gives null (a payload template's
    ``"x.$": "$.items[5]"`` on AWS); otherwise it is missing (an intrinsic's argument on AWS).

    Raises:
        StatesError: States.Runtime for a missing definite path or an unparseable path.
    """
    inner, function = _strip_length(path)
    if function:
        return _apply_function(function, path, evaluate(inner, data, context, variables, field, past_end_is_null))
    try:
        root, rest = split_root(path)
        extended = bool(_EXTENDED.search(rest))
        steps = [] if extended else parse(path)[1]
    except PathSyntaxError as exc:
        raise StatesError(RUNTIME, str(exc)) from exc
    base = _root_value(root, path, data, context, variables)
    if extended:
        try:
            return [match.value for match in jsonpath_ng.ext.parse("$" + rest).find(base)]
        except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises several exception types
            raise StatesError(RUNTIME, f"cannot evaluate the JSONPath {path!r}: {exc}") from exc
    multi = any(kind in ("star", "slice") for kind, _ in steps)
    values = [base]
    for kind, arg in steps:
        nxt = []
        for value in values:
            if kind == "key":
                if not isinstance(value, dict) or arg not in value:
                    if multi:
                        continue
                    raise _missing(path, field, base)
                nxt.append(value[arg])
            elif kind == "index":
                if not isinstance(value, list) or not -len(value) <= arg < len(value):
                    if multi:
                        continue
                    if isinstance(value, list) and past_end_is_null:
                        nxt.append(None)
                        continue
                    raise _missing(path, field, base)
                nxt.append(value[arg])
            elif kind == "slice":
                if isinstance(value, list):
                    nxt.extend(value[arg[0]:arg[1]])
            else:  # star
                nxt.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else [])
        values = nxt
    return values if multi else values[0]


def is_path_value_present(path: str, data: Any, context: Any = None, variables: Any = None) -> bool:
    """Whether ``path`` exists (Choice's IsPresent); an indefinite path is present when it matches something."""
    try:
        value = evaluate(path, data, context, variables)
    except StatesError:
        return False
    return bool(value) if not is_definite(path) else True


def _missing(path: str, field: str | None, data: Any) -> StatesError:
    where = f" specified for the field '{field}'" if field else ""
    return StatesError(RUNTIME, f"The JSONPath '{path}'{where} could not be found in the input "
                                f"'{json.dumps(data, default=str, separators=(',', ':'), ensure_ascii=False)}'")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 300 else text[:300] + "..."


def apply_input_path(path: str | None, data: Any, context: Any, variables: Any = None, field: str = "InputPath") -> Any:
    """InputPath / OutputPath: ``None`` (JSON null) gives ``{}``; missing means ``$``."""
    if path is None:
        return {}
    return evaluate(path, data, context, variables, field)


def apply_result_path(result_path: str | None, state_input: Any, result: Any) -> Any:
    """ResultPath: where the result goes in (a copy of) the state input; missing objects on the
    way are created.

    Raises:
        StatesError: States.ResultPathMatchFailure when the path cannot be applied to the input
            (a field of a non-object, an index into a non-array or past its end), as
            concepts-error-handling.html defines it (catchable).
    """
    if result_path is None:
        return copy.deepcopy(state_input)
    root, steps = parse(result_path)
    if root != "$" or any(kind not in ("key", "index") for kind, _ in steps):
        raise StatesError(RUNTIME, f"ResultPath {result_path!r} must be a reference path")
    if not steps:
        return result
    out = copy.deepcopy(state_input)
    node = out

    def mismatch(why: str) -> StatesError:
        return StatesError(RESULT_PATH_MATCH_FAILURE,
                           f"Unable to apply ResultPath {result_path!r} to input {_short(state_input)}: {why}")

    for position, (kind, key) in enumerate(steps):
        last = position == len(steps) - 1
        if kind == "index":
            if not isinstance(node, list) or not -len(node) <= key < len(node):
                raise mismatch(f"index [{key}] is not an element of an array")
        elif not isinstance(node, dict):
            raise mismatch(f"{key!r} is not a field of an object")
        elif key not in node and not last:
            node[key] = {}
        if last:
            node[key] = result
        else:
            node = node[key]
    return out
