"""``lambdatwin serve``: Step Functions, Lambda, S3 and CloudWatch Logs on one port.

The stack is Werkzeug (WSGI, threaded server), the same library moto's server runs
on: S3 *is* moto's S3 application (``create_backend_app("s3")``) mounted in this
process, so its wire format is the one moto keeps in step with botocore; the other
three services are this package's handlers. One stack, no hand-rolled HTTP parsing.
(An ASGI server would add a dependency and an event loop for no gain: the work per
request is a thread running an execution or waiting on a Lambda environment.)

Routing, as AWS's own endpoints are told apart by host name and protocol:
``X-Amz-Target: AWSStepFunctions.*`` -> Step Functions (awsJson1.0);
``X-Amz-Target: Logs_20140328.*`` -> CloudWatch Logs (awsJson1.1);
a path under ``/2015-03-31/functions`` -> Lambda (restJson1); anything else -> S3.

S3 objects persist across restarts by a snapshot into ``<state dir>/s3`` when the
server stops (SIGINT/SIGTERM) and a restore when it starts.

StartSyncExecution: the SDKs prefix its host with ``sync-``; against a local endpoint
set ``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` (boto3 and the AWS CLI read it).
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import boto3
from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from emulator.app.build import BuildCache
from emulator.app.deploy import ensure_bucket
from emulator.app.docker_run import DockerFunctions
from emulator.app.template import App, load_app, parse_parameter_overrides
from emulator.contracts import aws
from emulator.contracts.errors import EnvironmentSetupError
from emulator.docker.images import ensure_worker_image
from emulator.docker.nat import NatPreset
from emulator.docker.network import NetworkConfig, Topology
from emulator.endpoints import lambda_api, logs_api, stepfunctions_api
from emulator.endpoints.core import Twin
from emulator.endpoints.wire import ApiError, json_error, json_object, json_response, rest_error

_TARGETS = {"AWSStepFunctions": "states", "Logs_20140328": "logs"}
_SERVED = {"states", "logs", "lambda", "s3"}


def _signing_service(authorization: str) -> str | None:
    """The service a SigV4 request was signed for (``Credential=AKID/date/region/SERVICE/aws4_request``)."""
    try:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0]
        return scope.split("/")[3]
    except IndexError:
        return None


class Endpoints:
    """The WSGI application; see the module docstring."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.states = stepfunctions_api.StepFunctionsAPI(twin)
        self.lambda_ = lambda_api.LambdaAPI(twin)
        self.logs = logs_api.LogsAPI(twin.logs, before_read=lambda: twin.logs.sync(twin.service))
        self.s3 = create_backend_app("s3")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        target = request.headers.get("X-Amz-Target", "")
        service = _TARGETS.get(target.split(".", 1)[0])
        signed_for = _signing_service(request.headers.get("Authorization", ""))
        try:
            if (target and service is None) or (signed_for and signed_for not in _SERVED):
                what = signed_for or target.split(".", 1)[0]
                raise ApiError("UnknownOperationException", f"lambdatwin serve does not serve {what}; it serves "
                               "Step Functions, Lambda, S3 and CloudWatch Logs")
            if service == "states":
                response = self._json(self.states, target, request, stepfunctions_api.CONTENT_TYPE)
            elif service == "logs":
                response = self._json(self.logs, target, request, logs_api.CONTENT_TYPE)
            elif request.path.startswith(lambda_api.PREFIX):
                try:
                    response = self.lambda_.handle(request)
                except ApiError as err:
                    response = rest_error(err)
            else:
                return self.s3(environ, start_response)
        except ApiError as err:
            response = json_error(err, "application/x-amz-json-1.1")
        except Exception as exc:  # noqa: BLE001 - a server never crashes on a request
            response = json_error(ApiError("InternalServerError" if service else "ServiceException",
                                           f"lambdatwin serve failed on this request: {exc}", 500), "application/json")
        return response(environ, start_response)

    @staticmethod
    def _json(api: Any, target: str, request: Request, content_type: str) -> Response:
        try:
            body = json_object(request.get_data(), "SerializationException", "The request body is not valid JSON")
            return json_response(api.handle(target.split(".", 1)[1], body), content_type)
        except ApiError as err:
            return json_error(err, content_type)


def s3_client(endpoint_url: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=aws.REGION,
                        aws_access_key_id="lambdatwin", aws_secret_access_key="lambdatwin")


def snapshot_s3(endpoint_url: str, folder: Path) -> int:
    """Write every object to ``folder/<bucket>/<key>``; returns the count."""
    client = s3_client(endpoint_url)
    count = 0
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    for bucket in client.list_buckets().get("Buckets", []):
        (staging / bucket["Name"]).mkdir(parents=True, exist_ok=True)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                path = staging / bucket["Name"] / obj["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket["Name"], obj["Key"], str(path))
                count += 1
    staging.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # deleted objects do not come back
    return count


def restore_s3(endpoint_url: str, folder: Path) -> int:
    """Create the buckets and objects of a snapshot; returns the object count."""
    if not folder.is_dir():
        return 0
    client = s3_client(endpoint_url)
    count = 0
    for bucket_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        ensure_bucket(client, bucket_dir.name)
        for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
            client.upload_file(str(path), bucket_dir.name, path.relative_to(bucket_dir).as_posix())
            count += 1
    return count


def deploy_template(endpoints: Endpoints, app: App) -> None:
    """Create the app's buckets, functions and state machines (replacing ones of the same name)."""
    twin = endpoints.twin
    client = s3_client(twin.endpoint_url)
    for bucket in app.buckets.values():
        ensure_bucket(client, bucket.name)
    for spec in app.functions.values():
        doc = {"FunctionName": spec.name, "Runtime": spec.runtime, "Handler": spec.handler, "MemorySize": spec.memory_mb,
               "Timeout": spec.timeout_s, "Environment": spec.environment, "CodeDir": str(spec.code_dir or ""),
               "Layers": [str(p) for p in spec.layers], "ReservedConcurrentExecutions": spec.reserved_concurrency,
               "EphemeralStorage": spec.ephemeral_storage_mb, "Architectures": spec.architectures,
               "Role": aws.role_arn(f"{app.stack_name}-{spec.logical_id}Role"), "LastModified": time.time(),
               "Source": str(app.path), "PackageType": spec.package_type}
        if spec.package_type == "Image":
            doc.update(DockerContext=str(spec.docker_context), Dockerfile=spec.dockerfile,
                       DockerBuildArgs=spec.docker_build_args)
        twin.deploy_function(doc)
    for spec in app.state_machines.values():
        try:
            endpoints.states.create_machine(spec.name, spec.definition, aws.role_arn(f"{app.stack_name}-{spec.logical_id}Role"),
                                            spec.type, spec.substitutions, replace=True)
        except ApiError as err:
            raise EnvironmentSetupError(f"{app.path}: state machine {spec.logical_id!r}: {err.message}") from None


class Server:
    """A running ``serve`` (start/stop; used by the CLI and tests).

    Args:
        backend: ``process`` (functions as host processes) or ``docker`` (functions in containers on
            a network of their own; the server then listens on that network's gateway too, so
            functions' SDK calls reach it).
    """

    def __init__(self, host: str, port: int, state_dir: Path, runs_dir: Path, cache: BuildCache | None = None,
                 log: Callable[[str], None] = lambda line: None, backend: str = "process") -> None:
        self.state_dir = Path(state_dir)
        self.log = log
        self.backend = backend
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
        self._servers = [self._listen(host, port)]
        port = self._servers[0].server_port
        self.endpoint_url = f"http://{host}:{port}"
        self.topology = None
        functions, function_url = None, None
        if backend == "docker":
            self.topology, functions = _docker_functions(log)
            gateway = self.topology.public_gateway
            if host not in ("0.0.0.0", gateway):
                self._servers.append(self._listen(gateway, port))
            function_url = f"http://{gateway}:{port}"
        elif backend != "process":
            raise EnvironmentSetupError(f"--backend {backend!r} must be process or docker")
        self.twin = Twin(self.state_dir, runs_dir, self.endpoint_url, cache or BuildCache(log=log),
                         functions=functions, function_endpoint_url=function_url)
        self.app = Endpoints(self.twin)

    def _listen(self, host: str, port: int) -> BaseWSGIServer:
        try:
            return make_server(host, port, lambda e, s: self.app(e, s), threaded=True)
        except OSError as exc:
            raise EnvironmentSetupError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from None

    def start(self, app: App | None = None) -> "Server":
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True, name="serve").start()
        restored = restore_s3(self.endpoint_url, self.state_dir / "s3")
        self.twin.load()
        if app is not None:
            deploy_template(self.app, app)
        self.log(f"lambdatwin serve on {self.endpoint_url} ({self.backend} backend, state in {self.state_dir}, "
                 f"{restored} S3 objects restored, {len(self.twin.functions)} functions, "
                 f"{len(self.twin.machines)} state machines)")
        return self

    def stop(self) -> None:
        count = snapshot_s3(self.endpoint_url, self.state_dir / "s3")
        self.twin.shutdown()
        if self.topology is not None:
            self.topology.down()
        for server in self._servers:
            server.shutdown()
        self.log(f"stopped; {count} S3 objects saved to {self.state_dir / 's3'}")


def _docker_functions(log: Callable[[str], None]) -> tuple[Any, Any]:
    """A Topology (NAT none) for the server's lifetime and the DockerFunctions deploying into it.

    Raises:
        DockerUnavailable: no Docker engine (a user error: the message says how to start one).
    """
    topology = Topology(ensure_worker_image(), NetworkConfig(nat=NatPreset.NONE)).up()
    return topology, DockerFunctions(topology, log)


def serve(host: str, port: int, state_dir: Path, runs_dir: Path, template: Path | None = None,
          parameter_overrides: list[str] | None = None, log: Callable[[str], None] = print,
          backend: str = "process") -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    app = load_app(template, parse_parameter_overrides(parameter_overrides)) if template else None
    server = Server(host, port, state_dir, runs_dir, log=log, backend=backend).start(app)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0
