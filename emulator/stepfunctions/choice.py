"""Choice rules: comparison operators, And/Or/Not, Is* type tests, ...Path variants."""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime
from typing import Any

from emulator.stepfunctions.errors import RUNTIME, StatesError
from emulator.stepfunctions.paths import evaluate, is_path_value_present

_COMPARATORS = {
    "Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b, "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b, "GreaterThanEquals": lambda a, b: a >= b,
}
_TYPES = {"String": str, "Numeric": (int, float), "Boolean": bool, "Timestamp": str}
OPERATORS = (
    {f"{t}{c}" for t in ("String", "Numeric", "Timestamp") for c in _COMPARATORS}
    | {f"{t}{c}Path" for t in ("String", "Numeric", "Timestamp") for c in _COMPARATORS}
    | {"BooleanEquals", "BooleanEqualsPath", "StringMatches", "IsNull", "IsPresent", "IsString",
       "IsNumeric", "IsBoolean", "IsTimestamp"}
)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def evaluate_rule(rule: dict[str, Any], data: Any, context: Any, variables: Any = None) -> bool:
    """Whether a Choice rule (top-level or nested) holds for ``data``."""
    if "And" in rule:
        return all(evaluate_rule(r, data, context, variables) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate_rule(r, data, context, variables) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate_rule(rule["Not"], data, context, variables)
    variable = rule.get("Variable")
    operator = next((k for k in rule if k in OPERATORS), None)
    if variable is None or operator is None:
        raise StatesError(RUNTIME, f"Choice rule {rule} has no Variable or no comparison operator")
    if operator == "IsPresent":
        return is_path_value_present(variable, data, context, variables) == rule[operator]
    value = evaluate(variable, data, context, variables)
    expected = rule[operator]
    if operator == "IsNull":
        return (value is None) == expected
    if operator == "IsString":
        return isinstance(value, str) == expected
    if operator == "IsNumeric":
        return _is_numeric(value) == expected
    if operator == "IsBoolean":
        return isinstance(value, bool) == expected
    if operator == "IsTimestamp":
        return (_timestamp(value) is not None) == expected
    if operator == "StringMatches":
        # Only '*' is a wildcard; escape the other fnmatch specials.
        pattern = re.sub(r"([\[\]?])", r"[\1]", expected.replace("\\*", "\0")).replace("\0", "[*]")
        return isinstance(value, str) and fnmatch.fnmatchcase(value, pattern)
    if operator.endswith("Path"):
        expected = evaluate(expected, data, context, variables)
        operator = operator[:-4]
    if operator == "BooleanEquals":
        return isinstance(value, bool) and value == expected
    kind = next(t for t in _TYPES if operator.startswith(t))
    compare = _COMPARATORS[operator[len(kind):]]
    if kind == "Numeric":
        return _is_numeric(value) and _is_numeric(expected) and compare(value, expected)
    if kind == "Timestamp":
        a, b = _timestamp(value), _timestamp(expected)
        return a is not None and b is not None and compare(a, b)
    return isinstance(value, str) and isinstance(expected, str) and compare(value, expected)
