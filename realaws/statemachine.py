"""The repository's ASL file deployed as a STANDARD state machine, with definition substitutions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from emulator.contracts.job import SUBSTITUTION_KEYS
from realaws.config import STACK_TAG, StackNames
from realaws.errors import AwsError, error_code
from realaws.waiters import retry_on

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def render_definition(path: Path, substitutions: dict[str, str]) -> str:
    """The file's text with ``${Key}`` replaced, otherwise byte-for-byte unchanged.

    Raises:
        AwsError: a placeholder has no value, or the result is not JSON.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AwsError(f"state machine definition {path}: {exc.strerror or exc}") from None
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(substitutions))
    if unknown:
        raise AwsError(f"state machine definition {path}: no value for ${{{unknown[0]}}}")
    rendered = _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    try:
        json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise AwsError(f"state machine definition {path} is not JSON: {exc}") from None
    return rendered


def substitutions(names: StackNames) -> dict[str, str]:
    """The three function ARNs keyed by placeholder."""
    return {key: names.function_arn(role) for role, key in SUBSTITUTION_KEYS.items()}


def ensure_state_machine(sfn: Any, names: StackNames, definition: str, role_arn: str,
                         tags: dict[str, str]) -> tuple[str, bool]:
    """Create the state machine or update its definition and role; returns (ARN, created)."""
    arn = names.state_machine_arn
    tag_list = [{"key": k, "value": v} for k, v in sorted(tags.items())]
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) != "StateMachineDoesNotExist":
            raise
        # Step Functions checks that it can assume the role; a fresh role may not be visible yet.
        created = retry_on(
            lambda: sfn.create_state_machine(name=names.state_machine, definition=definition, roleArn=role_arn,
                                             type="STANDARD", tags=tag_list)["stateMachineArn"],
            codes={"AccessDeniedException", "InvalidRoleArn"}, timeout_s=60.0, interval_s=3.0,
            what=f"role {role_arn} to be assumable by Step Functions")
        return str(created), True
    sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
    sfn.tag_resource(resourceArn=arn, tags=tag_list)
    return arn, False


def state_machine_stack(sfn: Any, arn: str) -> str | None:
    """The state machine's ``lambdatwin:stack`` tag ('' untagged, None when absent)."""
    try:
        tags = sfn.list_tags_for_resource(resourceArn=arn)["tags"]
        sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) in ("StateMachineDoesNotExist", "ResourceNotFound"):
            return None
        raise
    return next((t["value"] for t in tags if t["key"] == STACK_TAG), "")


def stop_running_executions(sfn: Any, arn: str, cause: str) -> int:
    """Stop every RUNNING execution (so a deleted machine leaves nothing running); returns how many."""
    stopped = 0
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING"):
        for execution in page["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"], error="lambdatwin.Teardown", cause=cause)
            stopped += 1
    return stopped


def delete_state_machine(sfn: Any, arn: str) -> bool:
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except Exception as exc:  # noqa: BLE001
        if error_code(exc) == "StateMachineDoesNotExist":
            return False
        raise
    sfn.delete_state_machine(stateMachineArn=arn)
    return True


def lambda_tasks(definition: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(state name, FunctionName, inside a Map) for every ``lambda:invoke`` Task, depth first."""

    def walk(states: dict[str, Any], in_map: bool) -> Iterator[tuple[str, str, bool]]:
        for name, state in states.items():
            if state.get("Type") == "Task" and str(state.get("Resource", "")).endswith(":lambda:invoke"):
                fn = (state.get("Parameters") or {}).get("FunctionName")
                if isinstance(fn, str):
                    yield name, fn, in_map
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                yield from walk(processor.get("States", {}), True)
            for branch in state.get("Branches", []):
                yield from walk(branch.get("States", {}), in_map)

    yield from walk(definition.get("States", {}), False)
