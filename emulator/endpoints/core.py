"""The state behind ``lambdatwin serve``: functions, state machines, executions, logs, on disk.

Layout of ``--state-dir``::

    lambda/functions/<name>.json        a function: its configuration and where its code is
    lambda/code/<name>/<sha256>/        a zip deployed by CreateFunction / UpdateFunctionCode
    stepfunctions/machines/<name>.json  a state machine
    stepfunctions/executions/<id>.json  an execution with its history and map runs
    logs/<group>/<stream>.jsonl         CloudWatch Logs (emulator.app.logstore)
    s3/<bucket>/<key>                   S3 objects, written when serve stops, read when it starts

Every write is a whole file replaced atomically, so a killed server leaves the
previous state. An execution that was running when the server stopped is ABORTED
at the next start (the twin does not resume executions).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from emulator.app.build import BuildCache
from emulator.app.deploy import LocalFunctions
from emulator.app.logstore import LogStore
from emulator.contracts import aws
from emulator.contracts.errors import EnvironmentSetupError
from emulator.contracts.lambdas import FunctionConfig
from emulator.lambda_runtime.service import LambdaService
from emulator.s3server import LOCAL_CREDENTIALS


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, default=str)
    os.replace(tmp, path)


def _read_json_dir(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def _file_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Twin:
    """Everything ``serve`` holds; the three APIs operate on it.

    Args:
        state_dir: where state persists.
        runs_dir: where run records of executions go.
        endpoint_url: this server's URL.
        cache: venv builds (process backend).
        functions: the functions backend: LocalFunctions (processes, default) or DockerFunctions.
        function_endpoint_url: the URL functions' SDKs call (default ``endpoint_url``).
    """

    def __init__(self, state_dir: Path, runs_dir: Path, endpoint_url: str, cache: BuildCache | None = None,
                 functions: Any = None, function_endpoint_url: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.runs_dir = Path(runs_dir)
        self.endpoint_url = endpoint_url
        # where functions reach this server (a container cannot reach the host's loopback)
        self.function_endpoint_url = function_endpoint_url or endpoint_url
        self.local = functions or LocalFunctions(cache or BuildCache())
        self.service = LambdaService([], environment_factory=self.local.environment, on_record=self._on_record)
        self.logs = LogStore(self.state_dir / "logs")
        self.lock = threading.RLock()
        self.functions: dict[str, dict[str, Any]] = {}  # name -> stored document
        self.machines: dict[str, dict[str, Any]] = {}  # arn -> stored document
        self.executions: dict[str, dict[str, Any]] = {}  # arn -> stored document (history live while running)
        self.stops: dict[str, threading.Event] = {}  # running execution arn -> its stop event

    # -- the environment every function gets -----------------------------------------
    def function_environment(self) -> dict[str, str]:
        """SDK calls from a function reach this server (S3, Step Functions, Lambda, Logs)."""
        return {"AWS_ENDPOINT_URL": self.function_endpoint_url, **LOCAL_CREDENTIALS}

    def _on_record(self, record: Any) -> None:
        self.logs.sync(self.service)

    # -- functions -------------------------------------------------------------------
    def deploy_function(self, doc: dict[str, Any]) -> None:
        """Build and (re)deploy a stored function document; the next invoke is a cold start."""
        config = FunctionConfig(
            name=doc["FunctionName"], handler=doc["Handler"], memory_mb=int(doc["MemorySize"]),
            timeout_s=float(doc["Timeout"]), environment={**self.function_environment(), **doc["Environment"]},
            reserved_concurrency=doc.get("ReservedConcurrentExecutions"),
            ephemeral_storage_mb=int(doc.get("EphemeralStorage", aws.DEFAULT_EPHEMERAL_STORAGE_MB)),
        )
        if doc.get("PackageType") == "Image":
            if not hasattr(self.local, "deploy_image"):
                raise EnvironmentSetupError(f"function {config.name}: PackageType Image runs on `serve --backend docker`")
            self.local.deploy_image(config, Path(doc["DockerContext"]), doc["Dockerfile"], doc.get("DockerBuildArgs", {}))
        else:
            self.local.deploy(config, doc["Runtime"], Path(doc["CodeDir"]), [Path(p) for p in doc.get("Layers", [])])
        with self.lock:
            self.functions[config.name] = doc
            self.service.set_function(config.name, config)
        atomic_write_json(self.state_dir / "lambda" / "functions" / f"{config.name}.json", doc)

    def delete_function(self, name: str) -> None:
        with self.lock:
            doc = self.functions.pop(name)
            self.service.set_function(name, None)
            self.local.remove(name)
        (self.state_dir / "lambda" / "functions" / f"{name}.json").unlink(missing_ok=True)
        managed = self.state_dir / "lambda" / "code" / name
        if str(doc.get("CodeDir", "")).startswith(str(managed)):
            shutil.rmtree(managed, ignore_errors=True)

    def unpack_zip(self, name: str, data: bytes) -> tuple[Path, str]:
        """Extract a deployment package; returns (directory, base64 SHA-256 as Lambda reports CodeSha256).

        Raises:
            zipfile.BadZipFile: ``data`` is not a zip.
        """
        import base64

        digest = hashlib.sha256(data).digest()
        target = self.state_dir / "lambda" / "code" / name / digest.hex()[:16]
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(tmp)
            os.replace(tmp, target)
        return target, base64.b64encode(digest).decode()

    # -- state machines and executions ----------------------------------------------
    def save_machine(self, doc: dict[str, Any]) -> None:
        with self.lock:
            self.machines[doc["stateMachineArn"]] = doc
        atomic_write_json(self.state_dir / "stepfunctions" / "machines" / f"{_file_key(doc['stateMachineArn'])}.json", doc)

    def delete_machine(self, arn: str) -> None:
        with self.lock:
            self.machines.pop(arn, None)
        (self.state_dir / "stepfunctions" / "machines" / f"{_file_key(arn)}.json").unlink(missing_ok=True)

    def save_execution(self, doc: dict[str, Any]) -> None:
        with self.lock:
            snapshot = {**doc, "history": list(doc.get("history", []))}
        atomic_write_json(self.state_dir / "stepfunctions" / "executions" / f"{_file_key(doc['executionArn'])}.json", snapshot)

    # -- start and stop ---------------------------------------------------------------
    def load(self) -> None:
        """Read the stored state; executions that were running are ABORTED."""
        for doc in _read_json_dir(self.state_dir / "stepfunctions" / "machines"):
            self.machines[doc["stateMachineArn"]] = doc
        for doc in _read_json_dir(self.state_dir / "stepfunctions" / "executions"):
            if doc.get("status") == "RUNNING":
                doc.update(status="ABORTED", stopDate=time.time(), error="States.Runtime",
                           cause="lambdatwin serve stopped while the execution ran")
                self.save_execution(doc)
            self.executions[doc["executionArn"]] = doc
        for doc in _read_json_dir(self.state_dir / "lambda" / "functions"):
            source = doc.get("DockerContext") if doc.get("PackageType") == "Image" else doc.get("CodeDir")
            if source and Path(source).is_dir():
                self.deploy_function(doc)

    def shutdown(self) -> None:
        for stop in list(self.stops.values()):
            stop.set()
        self.service.shutdown()
        self.logs.sync(self.service)
