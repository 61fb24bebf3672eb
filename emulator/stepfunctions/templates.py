"""Payload templates of the JSONPath query language: ``Parameters``, ``ResultSelector``, ``ItemSelector``.

Rule (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html):
a field whose name ends in ``.$`` holds a path (``$.x``, ``$$.Execution.Id``, ``$var``) or an
intrinsic function call, and is replaced by a field without the suffix holding the value; every
other field is copied as it is, recursively through objects and arrays. ``Assign`` in JSONPath
states uses the same form (https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html).
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.stepfunctions.errors import RUNTIME, StatesError
from emulator.stepfunctions.intrinsics import call_intrinsic, check_intrinsic, is_intrinsic
from emulator.stepfunctions.paths import PathSyntaxError, check_path, evaluate


def resolve_template(template: Any, data: Any, context: Any, variables: Any = None) -> Any:
    """The template with every ``.$`` field resolved against ``data`` and ``context``.

    Raises:
        StatesError: States.Runtime for a missing path, States.IntrinsicFailure for a failed call.
    """
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise StatesError(RUNTIME, f"field {key!r} must hold a path or intrinsic function string")
                out[key[:-2]] = (call_intrinsic(value, data, context, variables) if is_intrinsic(value)
                                else evaluate(value, data, context, variables, key, past_end_is_null=True))
            else:
                out[key] = resolve_template(value, data, context, variables)
        return out
    if isinstance(template, list):
        return [resolve_template(v, data, context, variables) for v in template]
    return copy.deepcopy(template)


def check_template(template: Any) -> str | None:
    """What is wrong with a template's ``.$`` fields (syntax only), or None.

    Used at definition time: bad paths, unknown intrinsics and invalid string escapes.
    """
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    return f"field {key!r} must hold a path or intrinsic function string"
                try:
                    check_intrinsic(value) if is_intrinsic(value) else check_path(value)
                except (ValueError, PathSyntaxError) as exc:
                    return f"field {key!r}: {exc}"
            else:
                problem = check_template(value)
                if problem:
                    return problem
    elif isinstance(template, list):
        for value in template:
            problem = check_template(value)
            if problem:
                return problem
    return None
