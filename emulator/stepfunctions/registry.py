"""The state table: each state type's runner, fields and validator.

Adding a state type is one runner (a function ``(ExecutionPort, Step) -> Outcome``) and one
entry here. Fields per type: https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html
and each state's page.
"""

from __future__ import annotations

from typing import Mapping

import emulator.stepfunctions.definition as D
from emulator.stepfunctions.flow import run_choice, run_fail, run_pass, run_succeed, run_wait
from emulator.stepfunctions.map_state import run_map_state
from emulator.stepfunctions.parallel import run_parallel
from emulator.stepfunctions.port import StateType
from emulator.stepfunctions.task import run_task

STATE_TYPES: Mapping[str, StateType] = {
    "Task": StateType(run_task, D.TASK_FIELDS, D.validate_task),
    "Pass": StateType(run_pass, D.PASS_FIELDS),
    "Choice": StateType(run_choice, D.CHOICE_FIELDS, D.validate_choice, shapes_result=False),
    "Wait": StateType(run_wait, D.WAIT_FIELDS, D.validate_wait, shapes_result=False),
    "Succeed": StateType(run_succeed, D.SUCCEED_FIELDS, shapes_result=False),
    "Fail": StateType(run_fail, D.FAIL_FIELDS, D.validate_fail, shapes_result=False),
    "Parallel": StateType(run_parallel, D.PARALLEL_FIELDS, D.validate_parallel, failed_event="ParallelStateFailed"),
    "Map": StateType(run_map_state, D.MAP_FIELDS, D.validate_map, failed_event="MapStateFailed"),
}
