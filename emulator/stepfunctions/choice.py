"""Choice rules: comparison operators, And/Or/Not, Is* type tests, ...Path variants.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html): a top-level
rule has ``Next`` (and may ``Assign``); a nested rule (inside And/Or/Not) has no ``Next``; a
rule is either one Boolean combinator or a ``Variable`` with exactly one comparison operator,
whose value has the operator's type (a string, number, boolean, timestamp or path).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from emulator.stepfunctions.errors import RUNTIME, StatesError
from emulator.stepfunctions.paths import PathSyntaxError, check_path, evaluate, is_path_value_present
from emulator.stepfunctions.timestamps import parse_timestamp

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


def string_matches(value: str, pattern: str) -> bool:
    """StringMatches: ``*`` matches any run of characters; ``\\*`` is a literal ``*`` and ``\\\\`` a
    literal backslash; every other character stands for itself (state-choice.html)."""
    regex, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and pattern[i + 1:i + 2] in ("*", "\\"):
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


def _timestamp(value: Any) -> datetime | None:
    return parse_timestamp(value)


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _condition_value(path: str, data: Any, context: Any, variables: Any) -> Any:
    """The value a rule compares; a missing one is States.Runtime with AWS's cause."""
    try:
        return evaluate(path, data, context, variables)
    except StatesError as exc:
        if exc.error != RUNTIME or "variable that is not defined" in (exc.cause or ""):
            raise
        raise StatesError(RUNTIME, f"Invalid path '{path}': The choice state's condition path references an "
                                   "invalid value.") from exc


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
    value = _condition_value(variable, data, context, variables)
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
        return isinstance(value, str) and string_matches(value, expected)
    if operator.endswith("Path"):
        expected = _condition_value(expected, data, context, variables)
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


_BOOLEAN_OPERATORS = {"BooleanEquals", "IsNull", "IsPresent", "IsString", "IsNumeric", "IsBoolean", "IsTimestamp"}


def check_rule(rule: Any, top: bool) -> str | None:
    """What is wrong with a JSONPath Choice rule's structure, or None (definition time)."""
    if not isinstance(rule, dict):
        return "a Choice rule must be a JSON object"
    if top and "Next" not in rule:
        return "a Choice rule needs 'Next'"
    if not top and ("Next" in rule or "Assign" in rule):
        return "a nested Choice rule (inside And/Or/Not) cannot have 'Next' or 'Assign'"
    combinators = [k for k in ("And", "Or", "Not") if k in rule]
    operators = [k for k in rule if k in OPERATORS]
    if combinators:
        if len(combinators) > 1 or operators or "Variable" in rule:
            return "a Choice rule has one of And, Or, Not, or a Variable with one operator"
        inner = rule[combinators[0]]
        inner_rules = [inner] if combinators[0] == "Not" else inner
        if not isinstance(inner_rules, list) or not inner_rules:
            return f"'{combinators[0]}' needs {'a rule' if combinators[0] == 'Not' else 'a non-empty list of rules'}"
        for nested in inner_rules:
            problem = check_rule(nested, top=False)
            if problem:
                return problem
        return None
    if not isinstance(rule.get("Variable"), str):
        return "a Choice rule needs 'Variable' (a path) and one comparison operator"
    if len(operators) != 1:
        return f"a Choice rule needs exactly one comparison operator, found {len(operators)}"
    problem = _path_problem(rule["Variable"])
    if problem:
        return f"'Variable': {problem}"
    operator, value = operators[0], rule[operators[0]]
    if operator.endswith("Path"):
        problem = _path_problem(value) if isinstance(value, str) else "must be a path"
        return f"{operator!r}: {problem}" if problem else None
    if operator in _BOOLEAN_OPERATORS:
        ok = isinstance(value, bool)
    elif operator.startswith("Numeric"):
        ok = _is_numeric(value)
    elif operator.startswith("Timestamp"):
        ok = _timestamp(value) is not None
    else:
        ok = isinstance(value, str)
    return None if ok else f"{operator!r}: {value!r} is not a valid value for this operator"


def _path_problem(path: str) -> str | None:
    try:
        check_path(path)
    except PathSyntaxError as exc:
        return str(exc)
    return None
