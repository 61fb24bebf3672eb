"""JSONPath as Step Functions uses it: paths, reference paths, ResultPath, payload templates."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from emulator.stepfunctions.errors import RUNTIME, StatesError

_TOKEN = re.compile(r"""\.(?P<name>[^.\[\]]+)|\[\s*(?:'(?P<qs>[^']*)'|"(?P<qd>[^"]*)"|(?P<idx>-?\d+)|(?P<star>\*)|(?P<slice>-?\d*:-?\d*))\s*\]|\.\*""")


class PathSyntaxError(ValueError):
    """A path that cannot be parsed."""


def parse(path: str) -> tuple[str, list[tuple[str, Any]]]:
    """Split ``$.a['b'][0][*]`` into its root (``$`` or ``$$``) and steps."""
    if path.startswith("$$"):
        root, rest = "$$", path[2:]
    elif path.startswith("$"):
        root, rest = "$", path[1:]
    else:
        raise PathSyntaxError(f"path {path!r} must start with '$'")
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


def evaluate(path: str, data: Any, context: Any = None) -> Any:
    """The value at ``path`` in ``data`` (``$``) or ``context`` (``$$``).

    Raises:
        StatesError: States.Runtime when the path does not exist, as AWS does.
    """
    try:
        root, steps = parse(path)
    except PathSyntaxError as exc:
        raise StatesError(RUNTIME, str(exc)) from exc
    values = [context if root == "$$" else data]
    multi = False
    for kind, arg in steps:
        nxt = []
        for value in values:
            if kind == "key":
                if not isinstance(value, dict) or arg not in value:
                    if multi:
                        continue
                    raise StatesError(RUNTIME, f"The JSONPath '{path}' could not be found in the input '{_short(data if root == '$' else context)}'")
                nxt.append(value[arg])
            elif kind == "index":
                if not isinstance(value, list) or not -len(value) <= arg < len(value):
                    if multi:
                        continue
                    raise StatesError(RUNTIME, f"The JSONPath '{path}' could not be found in the input '{_short(data)}'")
                nxt.append(value[arg])
            elif kind == "slice":
                if not isinstance(value, list):
                    raise StatesError(RUNTIME, f"The JSONPath '{path}' slices a non-array")
                nxt.extend(value[arg[0]:arg[1]])
                multi = True
            else:  # star
                nxt.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else [])
                multi = True
        values = nxt
    return values if multi else values[0]


def is_path_value_present(path: str, data: Any) -> bool:
    """Whether ``path`` exists in ``data`` (Choice's IsPresent)."""
    try:
        evaluate(path, data)
        return True
    except StatesError:
        return False


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 300 else text[:300] + "..."


def apply_input_path(path: str | None, data: Any, context: Any) -> Any:
    """InputPath / OutputPath: ``None`` (JSON null) gives ``{}``; missing means ``$``."""
    if path is None:
        return {}
    return evaluate(path, data, context)


def apply_result_path(result_path: str | None, state_input: Any, result: Any) -> Any:
    """ResultPath: where the result goes in (a copy of) the state input."""
    if result_path is None:
        return copy.deepcopy(state_input)
    root, steps = parse(result_path)
    if root != "$" or any(kind not in ("key", "index") for kind, _ in steps):
        raise StatesError(RUNTIME, f"ResultPath {result_path!r} must be a reference path")
    if not steps:
        return result
    if not isinstance(state_input, dict):
        raise StatesError(RUNTIME, f"ResultPath {result_path!r} needs a JSON object input, got {_short(state_input)}")
    out = copy.deepcopy(state_input)
    node = out
    for kind, key in steps[:-1]:
        if kind == "index":
            node = node[key]
            continue
        if key not in node or not isinstance(node[key], dict):
            node[key] = {}
        node = node[key]
    last_kind, last = steps[-1]
    node[last] = result
    return out
