"""JSONata expressions as Step Functions evaluates them.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html):
- a string value is an expression only when it starts with ``{%`` and ends with ``%}`` (no
  space outside the delimiters); any other string is a literal. Expressions may appear at any
  depth of objects and arrays in ``Arguments``, ``Output``, ``Assign``, ``ItemSelector`` ...
- the reserved variable ``$states`` holds ``input``, ``context``, and where available
  ``result`` and ``errorOutput``; workflow variables are ``$name``;
- an expression that fails, or yields *undefined* (JSON cannot represent it), raises
  ``States.QueryEvaluationError``;
- Step Functions adds ``$partition``, ``$range``, ``$hash``, ``$random`` (with optional seed),
  ``$uuid`` and ``$parse``; ``$eval`` is not supported.

The evaluator is ``jsonata-python`` (a maintained pure-Python port of JSONata 2.x, the version
line AWS runs: 2.0.6); see docs/stepfunctions.md for why.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import uuid
from typing import Any

import jsonata
from jsonata.utils import Utils

from emulator.stepfunctions.errors import QUERY_EVALUATION_ERROR, StatesError

OPEN, CLOSE = "{%", "%}"
HASH_ALGORITHMS = {"MD5": hashlib.md5, "SHA-1": hashlib.sha1, "SHA-256": hashlib.sha256,
                   "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}
# $range has no documented size limit (unlike States.ArrayRange's 1,000); this bound only keeps
# one expression from exhausting the engine's memory.
MAX_RANGE_ITEMS = 1_000_000


def is_expression(value: Any) -> bool:
    """Whether ``value`` is a ``{% ... %}`` JSONata expression string."""
    return isinstance(value, str) and value.startswith(OPEN) and value.endswith(CLOSE) and len(value) >= 4


def _partition(items: Any, size: Any = None) -> list[Any] | None:
    """$partition: chunks of ``size`` (rounded towards zero); undefined for an empty array or size 0."""
    if not isinstance(items, list) or (size is not None and not _is_number(size)):
        raise ValueError("$partition(array, size) needs an array and a number")
    n = int(size) if size is not None else 0
    if n < 0:
        raise ValueError("$partition: the chunk size must not be negative")
    if not items or n == 0:
        return None
    return [items[i:i + n] for i in range(0, len(items), n)]


def _range(start: Any, end: Any, step: Any = None) -> Any:
    """$range: start to end by step, each rounded towards zero; undefined without a step or when
    the step points away from end; a single value is returned bare (a JSONata sequence of one)."""
    if not all(_is_number(v) for v in (start, end)) or (step is not None and not _is_number(step)):
        raise ValueError("$range(start, end, step) needs numbers")
    if step is None:
        return None
    first, last, by = int(start), int(end), int(step)
    if by == 0 or (last > first and by < 0) or (last < first and by > 0):
        return None
    count = (last - first) // by + 1
    if count > MAX_RANGE_ITEMS:
        raise ValueError(f"$range would build {count} items; at most {MAX_RANGE_ITEMS} are allowed")
    out = list(range(first, last + (1 if by > 0 else -1), by))
    return out[0] if len(out) == 1 else out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hash(data: Any, algorithm: Any = None) -> str | None:
    if algorithm is None:
        return None
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"$hash: algorithm {algorithm!r} must be one of {', '.join(HASH_ALGORITHMS)}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return HASH_ALGORITHMS[algorithm](text.encode()).hexdigest()


def _random(seed: Any = None) -> float:
    return random.Random(seed).random() if seed is not None else random.random()


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError("$parse needs a string")
    return json.loads(text)


def _no_eval(*_args: Any) -> Any:
    raise ValueError("$eval is not supported by Step Functions; use $parse")


_FUNCTIONS = {"partition": _partition, "range": _range, "hash": _hash, "random": _random,
              "uuid": lambda: str(uuid.uuid4()), "parse": _parse, "eval": _no_eval}
_cache: dict[str, jsonata.Jsonata] = {}
_cache_lock = threading.Lock()


def compile_expression(text: str) -> jsonata.Jsonata:
    """The compiled expression inside ``{% %}`` (cached).

    Raises:
        ValueError: the expression does not parse.
    """
    body = text[len(OPEN):-len(CLOSE)]
    with _cache_lock:
        compiled = _cache.get(body)
    if compiled is None:
        try:
            compiled = jsonata.Jsonata(body)
        except Exception as exc:  # noqa: BLE001 - jsonata raises JException and Python errors alike
            raise ValueError(f"{text!r} is not a valid JSONata expression: {exc}") from exc
        compiled.set_output_convert_nulls(False)
        for name, fn in _FUNCTIONS.items():
            compiled.register_lambda(name, fn)
        with _cache_lock:
            _cache[body] = compiled
    return compiled


def unsupported_reference(text: str, in_catcher: bool = False) -> str | None:
    """What AWS refuses in an expression when the definition is created, or None: a path that
    starts from the (absent) context item at the top level ("Reference to 'phone' at the top
    level is not supported."), ``$$``, and ``$states.errorOutput`` outside a Catcher's Output or
    Assign. Names after a path's first step, in filters, sort terms and groupings read an item,
    not the top level, and are allowed.

    Raises:
        ValueError: the expression does not parse.
    """
    problems: list[str] = []

    def visit(node: Any, top: bool) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, top)
            return
        if not hasattr(node, "type"):
            return
        kind = getattr(node, "type", None)
        if kind == "variable" and getattr(node, "value", None) == "$":
            problems.append("Reference to '$$' is not supported.")
        if kind == "name" and top:
            problems.append(f"Reference to '{node.value}' at the top level is not supported.")
        if kind == "path":
            steps = node.steps or []
            names = [getattr(step, "value", None) for step in steps[:2]]
            if names == ["states", "errorOutput"] and getattr(steps[0], "type", None) == "variable" and not in_catcher:
                problems.append("'$states.errorOutput' is only available in a Catcher's Output and Assign.")
            for position, step in enumerate(steps):
                visit(step, top and position == 0)
            for attr in ("group", "stages", "predicate"):
                visit(getattr(node, attr, None), False)
            return
        for attr, child in vars(node).items():
            if attr.startswith("_") or child is None:
                continue
            inner_top = top and attr not in ("stages", "predicate", "group", "terms", "filter")
            if attr == "lhs" and isinstance(child, list):  # object constructor: [key, value] pairs
                for pair in child:
                    visit(list(pair) if isinstance(pair, (list, tuple)) else pair, inner_top)
            else:
                visit(child, inner_top)

    visit(compile_expression(text).ast, True)
    return problems[0] if problems else None


def evaluate_expression(text: str, bindings: dict[str, Any], field: str = "") -> Any:
    """Evaluate one ``{% %}`` expression with ``$states`` and variables bound.

    ``field`` is where the expression is written, relative to the state (``Output/v``,
    ``Arguments/Payload[0]``, ``Choices[1]/Condition``), as AWS names it in the cause.

    Raises:
        StatesError: States.QueryEvaluationError when it fails or yields undefined.
    """
    body = text.strip()[len(OPEN):-len(CLOSE)].strip()
    where = f" specified for the field '{field}'" if field else ""
    try:
        compiled = compile_expression(text)
        # A variable holding JSON null is null, not undefined: bind it as the library's null.
        value = compiled.evaluate(None, {k: Utils.NULL_VALUE if v is None else v for k, v in bindings.items()})
    except StatesError:
        raise
    except Exception as exc:  # noqa: BLE001 - any evaluation failure is a query evaluation error
        raise StatesError(QUERY_EVALUATION_ERROR, f"An error occurred while evaluating the JSONata expression "
                                                  f"'{body}'{where}: {exc}", field or None) from exc
    if value is None:
        raise StatesError(QUERY_EVALUATION_ERROR, f"The JSONata expression '{body}'{where} returned nothing (undefined).",
                          field or None)
    return Utils.convert_nulls(value)


def resolve(value: Any, bindings: dict[str, Any], field: str = "") -> Any:
    """``value`` with every expression string in it (at any depth) replaced by its result;
    ``field`` names where ``value`` is written (object keys join with ``/``, indexes as ``[i]``)."""
    if is_expression(value):
        return evaluate_expression(value, bindings, field)
    if isinstance(value, dict):
        return {k: resolve(v, bindings, f"{field}/{k}" if field else k) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, bindings, f"{field}[{i}]") for i, v in enumerate(value)]
    return value
