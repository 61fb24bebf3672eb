"""An Amazon States Language engine that runs the same definition that is deployed to AWS.

    sm = StateMachine(definition, substitutions={"WorkerFunctionArn": ...})
    result = sm.execute(input, invoker=lambda_service, s3_client=s3)

See docs/stepfunctions.md for what is supported.
"""

from emulator.stepfunctions.clock import RealClock, VirtualClock
from emulator.stepfunctions.engine import ExecutionResult, StateMachine
from emulator.stepfunctions.errors import DefinitionError, StatesError

__all__ = ["StateMachine", "ExecutionResult", "DefinitionError", "StatesError", "RealClock", "VirtualClock"]
