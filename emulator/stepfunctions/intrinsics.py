"""Intrinsic functions (``States.Format('{} of {}', $.a, $.b)`` ...) of the JSONPath language.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html): string
literals are single-quoted, and ``'``, ``{``, ``}`` and ``\\`` are escaped with a backslash (any
other escape is invalid, rejected when the definition is created); arguments may be literals,
paths (``$.x``, ``$$.x``, ``$var``) or nested calls (up to 10 deep). ``States.Format`` renders a
non-string argument as Java does (``{Arg1=1, Arg2=[]}``); ``States.MathAdd`` adds integers,
rounding each argument half-up; ``States.StringToJson('')`` is null; ``States.Base64Encode``,
``States.Base64Decode`` and ``States.Hash`` take a string of at most 10,000 characters;
``States.MathRandom`` rounds non-integer bounds to the nearest integer;
``States.ArrayGetItem`` needs an index inside the array.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import uuid
from typing import Any, Callable

from emulator.stepfunctions.errors import INTRINSIC_FAILURE, RUNTIME, StatesError
from emulator.stepfunctions.paths import PathSyntaxError, check_path, evaluate

_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_PATH = re.compile(r"\$\$?[^,()\s]*")
_ESCAPABLE = "'{}\\"
MAX_NESTING = 10


def is_intrinsic(text: str) -> bool:
    """Whether a ``.$`` value is an intrinsic function call (rather than a path)."""
    return text.startswith("States.") and text.rstrip().endswith(")")


class _Parser:
    """Parses, and unless ``dry`` evaluates, one intrinsic call."""

    def __init__(self, text: str, data: Any, context: Any, variables: Any = None, dry: bool = False) -> None:
        self.text, self.pos, self.data, self.context = text, 0, data, context
        self.variables, self.dry, self.depth = variables, dry, 0

    def fail(self, why: str) -> StatesError:
        return StatesError(INTRINSIC_FAILURE, f"{why} at position {self.pos} of {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call(self) -> Any:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} nested intrinsic functions")
        try:
            return self._call()
        finally:
            self.depth -= 1

    def _call(self) -> Any:
        self.skip()
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.fail("expected an intrinsic function name")
        name = m.group(0)
        self.pos = m.end()
        if self.text[self.pos:self.pos + 1] != "(":
            raise self.fail("expected '('")
        self.pos += 1
        args: list[Any] = []
        self.skip()
        if self.text[self.pos:self.pos + 1] == ")":
            self.pos += 1
        else:
            while True:
                args.append(self.arg())
                self.skip()
                ch = self.text[self.pos:self.pos + 1]
                self.pos += 1
                if ch == ")":
                    break
                if ch != ",":
                    raise self.fail("expected ',' or ')'")
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise StatesError(INTRINSIC_FAILURE, f"unknown intrinsic function {name}")
        if self.dry:
            return None
        try:
            return fn(*args)
        except StatesError:
            raise
        except Exception as exc:  # any bad argument is the function's failure, never the engine's
            raise StatesError(INTRINSIC_FAILURE, f"{name}: {exc}") from exc

    def arg(self) -> Any:
        self.skip()
        ch = self.text[self.pos:self.pos + 1]
        if ch == "'":
            return self.string()
        if ch == "$":
            m = _PATH.match(self.text, self.pos)
            self.pos = m.end()
            if self.dry:
                try:
                    check_path(m.group(0))
                except PathSyntaxError as exc:
                    raise self.fail(str(exc)) from exc
                return None
            try:
                return evaluate(m.group(0), self.data, self.context, self.variables)
            except StatesError as exc:
                # AWS's cause names the whole call as written and the argument that is missing.
                raise StatesError(RUNTIME, f"The function '{self.text}' had the following error: The JsonPath argument "
                                           f"for the field '{m.group(0)}' could not be found in the input "
                                           f"'{json.dumps(self.data, separators=(',', ':'), ensure_ascii=False)}'") from exc
        if self.text.startswith("States.", self.pos):
            return self.call()
        for word, value in (("null", None), ("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        m = _NUMBER.match(self.text, self.pos)
        if m:
            self.pos = m.end()
            return json.loads(m.group(0))
        raise self.fail("expected a string, number, path or function")

    def string(self) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                escaped = self.text[self.pos + 1:self.pos + 2]
                if not escaped or escaped not in _ESCAPABLE:
                    raise self.fail(f"invalid escape '\\{escaped}' (only \\' \\{{ \\}} \\\\ are allowed)")
                # Keep \{ and \} escaped: States.Format tells them from its {} placeholders.
                out.append(("\\" + escaped) if escaped in "{}" else escaped)
                self.pos += 2
                continue
            if ch == "'":
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated string")


def call_intrinsic(text: str, data: Any, context: Any, variables: Any = None) -> Any:
    """Evaluate an intrinsic function call against the state's data, context and variables.

    Raises:
        StatesError: States.IntrinsicFailure (bad call or arguments), States.Runtime (missing path).
    """
    parser = _Parser(text.strip(), data, context, variables)
    value = parser.call()
    parser.skip()
    if parser.pos != len(parser.text):
        raise parser.fail("unexpected text after the call")
    return _unescape(value) if isinstance(value, str) else value


def check_intrinsic(text: str) -> None:
    """Check a call's syntax, function names, paths and string escapes without evaluating it.

    Raises:
        ValueError: what is wrong, for a definition-time error.
    """
    parser = _Parser(text.strip(), None, None, dry=True)
    try:
        parser.call()
        parser.skip()
        if parser.pos != len(parser.text):
            raise parser.fail("unexpected text after the call")
    except StatesError as exc:
        raise ValueError(exc.cause or exc.error) from exc


def _unescape(text: str) -> str:
    return text.replace("\\{", "{").replace("\\}", "}")


def _java(value: Any) -> str:
    """How Step Functions (Java) renders a value inside States.Format."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    return _unescape(value) if isinstance(value, str) else json.dumps(value)


def _format(template: str, *args: Any) -> str:
    parts = re.split(r"(?<!\\)\{\}", template)
    if len(parts) - 1 != len(args):
        raise ValueError(f"{len(parts) - 1} placeholders but {len(args)} arguments")
    out = parts[0]
    for arg, part in zip(args, parts[1:]):
        out += _java(arg) + part
    return _unescape(out)


def _half_up(value: Any) -> int:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return int(math.floor(value + 0.5))


def _partition(items: Any, size: Any) -> list[list]:
    items = _array(items)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError("chunk size must be positive")
    return [items[i:i + size] for i in range(0, len(items), size)]


def _range(start: int, end: int, step: int) -> list[int]:
    if step == 0:
        raise ValueError("step must not be 0")
    out = list(range(int(start), int(end) + (1 if step > 0 else -1), int(step)))
    if len(out) > 1000:
        raise ValueError("States.ArrayRange is limited to 1000 elements")
    return out


MAX_STRING_ARGUMENT = 10_000  # States.Base64Encode/Decode and States.Hash inputs, in characters


def _limited(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    if len(text) > MAX_STRING_ARGUMENT:
        raise ValueError(f"the input has {len(text)} characters; at most {MAX_STRING_ARGUMENT} are allowed")
    return text


def _array(value: Any) -> list:
    """The argument, which must be a JSON array."""
    if not isinstance(value, list):
        raise ValueError(f"{json.dumps(value, ensure_ascii=False)} is not an array")
    return value


def _string(value: Any) -> str:
    """The argument, which must be a JSON string."""
    if not isinstance(value, str):
        raise ValueError(f"{json.dumps(value, ensure_ascii=False)} is not a string")
    return value


def _json_key(value: Any) -> str:
    """A value's identity as JSON (Java's JsonNode.equals): ``true`` is not ``1``, key order does not count."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _contains(items: Any, value: Any) -> bool:
    key = _json_key(value)
    return any(_json_key(item) == key for item in _array(items))


def _get_item(items: Any, index: Any) -> Any:
    if not isinstance(items, list) or not isinstance(index, int) or isinstance(index, bool):
        raise ValueError("States.ArrayGetItem needs an array and an integer index")
    if not 0 <= index < len(items):
        raise ValueError(f"index {index} is outside the array (length {len(items)})")
    return items[index]


def _hash(data: Any, algorithm: str) -> str:
    algorithms = {"MD5": hashlib.md5, "SHA-1": hashlib.sha1, "SHA-256": hashlib.sha256,
                  "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}
    if algorithm not in algorithms:
        raise ValueError(f"hash algorithm {algorithm!r} must be one of {', '.join(algorithms)}")
    return algorithms[algorithm](_limited(data).encode()).hexdigest()


def _merge(a: Any, b: Any, deep: Any) -> dict:
    if not isinstance(a, dict) or not isinstance(b, dict) or not isinstance(deep, bool):
        raise ValueError("States.JsonMerge needs two JSON objects and a boolean")
    if deep:
        raise ValueError("States.JsonMerge supports shallow merge only (third argument false), as AWS does")
    return {**a, **b}


def _unique(items: Any) -> list:
    out: dict[str, Any] = {}
    for item in _array(items):
        out.setdefault(_json_key(item), item)
    return list(out.values())


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.Format": _format,
    "States.StringToJson": lambda s: json.loads(s) if _string(s).strip() else None,
    "States.JsonToString": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
    "States.Array": lambda *a: list(a),
    "States.ArrayPartition": _partition,
    "States.ArrayContains": _contains,
    "States.ArrayRange": _range,
    "States.ArrayGetItem": lambda a, i: _get_item(a, i),
    "States.ArrayLength": lambda a: len(_array(a)),
    "States.ArrayUnique": _unique,
    "States.Base64Encode": lambda s: base64.b64encode(_limited(s).encode()).decode(),
    "States.Base64Decode": lambda s: base64.b64decode(_limited(s), validate=True).decode(),
    "States.Hash": _hash,
    "States.JsonMerge": _merge,
    "States.MathRandom": lambda lo, hi, seed=None: random.Random(seed).randint(_half_up(lo), _half_up(hi) - 1),
    "States.MathAdd": lambda a, b: _half_up(a) + _half_up(b),
    "States.StringSplit": lambda s, sep: ([p for p in re.split("|".join(map(re.escape, _string(sep))), _string(s)) if p]
                                          if sep else [_string(s)]),
    "States.UUID": lambda: str(uuid.uuid4()),
}

__all__ = ["call_intrinsic", "check_intrinsic", "is_intrinsic", "FUNCTIONS"]
