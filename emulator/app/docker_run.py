"""Run an app on the Docker backend (``lambdatwin emulate --template``).

The cloud around the functions is the emulator's (``emulator.docker``): a Topology with the
S3 endpoint container and, per the NAT preset, LANs and routers. Each function runs in
containers of its own image (:mod:`emulator.app.images`) with its code directory (and its
layers' ``python/`` directories) copied into ``/var/task`` at container creation, so a code
edit needs no image rebuild. The execution, the LambdaService and the run record are the
process backend's (:mod:`emulator.app.runner`), with ``backend: docker``.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any, Callable

from emulator.app import record as app_record
from emulator.app.deploy import ensure_bucket
from emulator.app.images import image_function_image, zip_function_image
from emulator.app.runner import Upload, state_machine_of
from emulator.app.template import App, FunctionSpec
from emulator.contracts import job
from emulator.contracts.errors import DefinitionFileError
from emulator.contracts.runrecord import RunRecord
from emulator.docker.engine import docker_client
from emulator.docker.environment import ContainerEnvironment
from emulator.docker.images import ensure_base_image, ensure_worker_image
from emulator.docker.job import function_environment
from emulator.s3server import local_client
from emulator.docker.nat import NatPreset
from emulator.docker.network import NetworkConfig, Topology
from emulator.lambda_runtime.service import LambdaService


def task_archive(spec: FunctionSpec) -> bytes | None:
    """A tar for ``/var/task``: the layers' contents, then the code directory over them (None for images)."""
    if spec.code_dir is None:
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        roots = [layer / "python" if (layer / "python").is_dir() else layer for layer in spec.layers] + [spec.code_dir]
        for root in roots:
            # os.walk(followlinks=True): a symlinked package (examples/cosmicai/src/worker) is part of the code.
            for folder, dirs, files in sorted(os.walk(root, followlinks=True)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    path = Path(folder) / name
                    tar.add(path.resolve(), arcname=path.relative_to(root).as_posix())
    return buffer.getvalue()


def function_images(app: App, client: Any, log: Callable[[str], None]) -> dict[str, str]:
    """Build (or reuse) every function's image; returns image by function name.

    Raises:
        DefinitionFileError: a zip function whose Runtime is not the base image's Python.
    """
    base = ensure_base_image(client=client)
    python_base = zip_function_image(client, base, None, log, "the Lambda Python base")
    images: dict[str, str] = {}
    for spec in app.functions.values():
        if spec.package_type == "Image":
            images[spec.name] = image_function_image(client, spec, python_base, spec.docker_build_args, log)
            continue
        if spec.runtime != "python3.11":
            raise DefinitionFileError(f"function {spec.logical_id!r}: Runtime {spec.runtime} on the Docker backend: "
                                      "its base image has Python 3.11; use python3.11")
        requirements = spec.code_dir / "requirements.txt" if spec.code_dir else None
        images[spec.name] = zip_function_image(client, base, requirements, log, f"function {spec.logical_id}")
    return images


def run_app_docker(app: App, execution_input: Any, *, runs_dir: Path, uploads: list[Upload] = (),
                   state_machine: str | None = None, nat: str = "none", log: Callable[[str], None] = lambda line: None,
                   run_id: str | None = None) -> tuple[RunRecord, Path]:
    """Run the app once with every invocation in a container; returns the record and its directory."""
    machine = state_machine_of(app, state_machine)
    client = docker_client()
    images = function_images(app, client, log)
    archives = {spec.name: task_archive(spec) for spec in app.functions.values()}
    run_id = run_id or job.new_run_id()
    topology = Topology(ensure_worker_image(client=client), NetworkConfig(nat=NatPreset.parse(nat)), run_id=run_id,
                        client=client)
    with topology:
        s3 = topology.start_s3()
        s3_client = local_client("s3", s3.url)
        for bucket in app.buckets.values():
            ensure_bucket(s3_client, bucket.name)
        for upload in uploads:
            log(f"uploaded {upload.run(s3_client)} files from {upload.directory} to s3://{upload.bucket}/{upload.prefix}")
        env = function_environment(f"http://{s3.address}")
        configs = [spec.config(env) for spec in app.functions.values()]

        def factory(fn: Any) -> ContainerEnvironment:
            spec = app.function(fn.name)
            return ContainerEnvironment(fn, topology=topology, image=images[fn.name], task_archive=archives[fn.name],
                                        image_is_the_function=spec.package_type == "Image")

        service = LambdaService(configs, environment_factory=factory)
        invoker = app_record.RecordingInvoker(service)
        try:
            log(f"running state machine {machine.name} on Docker (NAT {nat})")
            result = machine.execute(execution_input, invoker=invoker, s3_client=s3_client, name=run_id)
        finally:
            service.shutdown()
    config = {"template": str(app.path), "parameters": app.parameters, "state_machine": machine.name,
              "execution_input": execution_input, "peak_concurrency": service.peak_concurrency,
              "docker": {"images": images, "nat": nat}}
    record = app_record.execution_record(run_id, "docker", config, configs, result, invoker.records)
    return record, app_record.write_run(record, runs_dir, service.log_streams)


class DockerFunctions:
    """The Docker backend's deployed functions for a long-running ``serve`` (same interface as LocalFunctions).

    Args:
        topology: the server's network (NAT none: containers on its public network).
        log: build progress.
    """

    def __init__(self, topology: Topology, log: Callable[[str], None] = lambda line: None) -> None:
        self.topology = topology
        self.log = log
        self.client = topology.client
        self.base = ensure_base_image(client=self.client)
        self.images: dict[str, str] = {}
        self.specs: dict[str, FunctionSpec] = {}
        self._python_base: str | None = None
        self.configs: dict[str, Any] = {}

    def deploy(self, config: Any, runtime: str, code_dir: Path, layers: list[Path] | None = None) -> Any:
        """Build (or reuse) the image for ``code_dir``'s requirements; the code goes in at each cold start."""
        if runtime != "python3.11":
            raise DefinitionFileError(f"function {config.name}: Runtime {runtime} on the Docker backend: its base "
                                      "image has Python 3.11; use python3.11")
        spec = FunctionSpec(logical_id=config.name, name=config.name, handler=config.handler, runtime=runtime,
                            memory_mb=config.memory_mb, timeout_s=config.timeout_s, environment={},
                            code_dir=Path(code_dir), layers=list(layers or []))
        image = zip_function_image(self.client, self.base, Path(code_dir) / "requirements.txt", self.log,
                                   f"function {config.name}")
        self.images[config.name], self.specs[config.name] = image, spec
        self.configs[config.name] = config
        return config

    def deploy_image(self, config: Any, context: Path, dockerfile: str, build_args: dict[str, str]) -> Any:
        """Build (or reuse) a PackageType Image function's image from its Dockerfile."""
        spec = FunctionSpec(logical_id=config.name, name=config.name, handler=config.handler, runtime="",
                            memory_mb=config.memory_mb, timeout_s=config.timeout_s, environment={},
                            package_type="Image", docker_context=Path(context), dockerfile=dockerfile,
                            docker_build_args=dict(build_args))
        if self._python_base is None:
            self._python_base = zip_function_image(self.client, self.base, None, self.log, "the Lambda Python base")
        self.images[config.name] = image_function_image(self.client, spec, self._python_base, spec.docker_build_args, self.log)
        self.specs[config.name] = spec
        self.configs[config.name] = config
        return config

    def remove(self, name: str) -> None:
        for table in (self.images, self.specs, self.configs):
            table.pop(name, None)

    def environment(self, fn: Any) -> ContainerEnvironment:
        """A container on the function's image with its code as it is now (an edit shows at the next cold start)."""
        spec = self.specs[fn.name]
        return ContainerEnvironment(fn, topology=self.topology, image=self.images[fn.name],
                                    task_archive=task_archive(spec), image_is_the_function=spec.package_type == "Image")
