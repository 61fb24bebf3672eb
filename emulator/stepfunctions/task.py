"""The Task state's runner: Lambda, through the optimized integration or a function ARN.

Rules (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html): with
``arn:aws:states:::lambda:invoke`` the arguments are the Invoke request (``FunctionName``,
``Payload`` ...) and the result is the Invoke response (``ExecutedVersion``, ``Payload``,
``StatusCode``, ``SdkHttpMetadata``, ``SdkResponseMetadata``); with a function ARN as the
``Resource`` the arguments are the payload and the result is the function's output.
``TimeoutSeconds`` abandons the call with ``States.Timeout``
(https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from emulator.contracts import aws
from emulator.contracts.aws import function_name_of
from emulator.contracts.lambdas import LambdaFunctionError, LambdaInvoker
from emulator.stepfunctions import errors as E
from emulator.stepfunctions.definition import LAMBDA_INVOKE
from emulator.stepfunctions.history import as_json
from emulator.stepfunctions.port import ExecutionPort, Outcome, Step


def run_task(execution: ExecutionPort, step: Step) -> Outcome:
    """Invoke the Lambda function and record the Task/LambdaFunction events."""
    params = step.lang.arguments(step)
    resource = step.state["Resource"]
    history = execution.history
    if resource == LAMBDA_INVOKE:
        function = function_name_of(str(params.get("FunctionName", "")))
        payload = params.get("Payload", step.input)
        history.add("TaskScheduled", {"resourceType": "lambda", "resource": "invoke",
                                      "region": aws.REGION, "parameters": as_json(params)})
        history.add("TaskStarted", {"resourceType": "lambda", "resource": "invoke"})
    else:
        function = function_name_of(resource)
        payload = params
        history.add("LambdaFunctionScheduled", {"resource": resource, "input": as_json(payload)})
        history.add("LambdaFunctionStarted")
    timeout = step.lang.value(step, "TimeoutSeconds")
    try:
        output = invoke_with_timeout(execution.invoker, function, payload, timeout)
    except E.StatesError as exc:
        prefix = "Task" if resource == LAMBDA_INVOKE else "LambdaFunction"
        kind = "TimedOut" if exc.error == E.TIMEOUT else "Failed"
        history.add(f"{prefix}{kind}", {"error": exc.error, "cause": exc.cause, "resourceType": "lambda"})
        raise
    if resource == LAMBDA_INVOKE:
        history.add("TaskSucceeded", {"resourceType": "lambda", "resource": "invoke", "output": as_json(output)})
        return Outcome({"ExecutedVersion": "$LATEST", "Payload": output, "StatusCode": 200,
                        "SdkHttpMetadata": {"httpStatusCode": 200},
                        "SdkResponseMetadata": {"requestId": str(uuid.uuid4())}})
    history.add("LambdaFunctionSucceeded", {"output": as_json(output)})
    return Outcome(output)


def invoke_with_timeout(invoker: LambdaInvoker, function: str, payload: Any, timeout: float | None) -> Any:
    """Call the invoker; a Task TimeoutSeconds abandons the call as Step Functions does.

    Raises:
        StatesError: the function's error (its errorType), or States.Timeout.
    """
    def call() -> Any:
        try:
            return invoker.invoke(function, payload)
        except LambdaFunctionError as exc:
            raise E.StatesError(exc.error_type, json.dumps(exc.to_payload())) from exc

    if not timeout:
        return call()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except E.StatesError as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise E.StatesError(E.TIMEOUT, f"the task ran longer than its TimeoutSeconds ({timeout} s)")
    if "error" in box:
        raise box["error"]
    return box["value"]
