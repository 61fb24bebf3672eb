"""Payload templates of the JSONPath query language: ``Parameters``, ``ResultSelector``, ``ItemSelector``.

Rule (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html):
a field whose name ends in ``.$`` holds a path (``$.x``, ``$$.Execution.Id``, ``$var``) or an
intrinsic function call, and is replaced by a field without the suffix holding the value; every
other field is copied as it is, recursively through objects and arrays.
"""

from __future__ import annotations

import copy
from typing import Any

from emulator.stepfunctions.errors import RUNTIME, StatesError
from emulator.stepfunctions.intrinsics import call_intrinsic, is_intrinsic
from emulator.stepfunctions.paths import evaluate


def resolve_template(template: Any, data: Any, context: Any) -> Any:
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
                out[key[:-2]] = call_intrinsic(value, data, context) if is_intrinsic(value) else evaluate(value, data, context)
            else:
                out[key] = resolve_template(value, data, context)
        return out
    if isinstance(template, list):
        return [resolve_template(v, data, context) for v in template]
    return copy.deepcopy(template)
