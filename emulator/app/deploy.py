"""An app deployed on the process backend: each function with its own build, one LambdaService.

:class:`LocalFunctions` keeps, per function name, the :class:`FunctionConfig` and the
:class:`~emulator.app.build.ProcessBuild` (interpreter, code directory, layers), and
is the ``environment_factory`` of the :class:`LambdaService`. The template runner,
``lambdatwin invoke`` and the ``serve`` Lambda API all deploy through it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from emulator.app.build import BuildCache, ProcessBuild
from emulator.app.template import App, FunctionSpec
from emulator.contracts.errors import DefinitionFileError
from emulator.contracts.lambdas import FunctionConfig
from emulator.lambda_runtime.environment import ProcessEnvironment
from emulator.lambda_runtime.service import LambdaService


class LocalFunctions:
    """Functions of the process backend and how to start their environments.

    Args:
        cache: where venvs are built.
    """

    def __init__(self, cache: BuildCache) -> None:
        self.cache = cache
        self.builds: dict[str, ProcessBuild] = {}
        self.configs: dict[str, FunctionConfig] = {}
        self.runtimes: dict[str, str] = {}
        self._lock = threading.Lock()

    def deploy_spec(self, spec: FunctionSpec, extra_environment: dict[str, str] | None = None) -> FunctionConfig:
        """Build a template function and remember it; returns its FunctionConfig.

        Raises:
            DefinitionFileError: an Image function (the process backend runs zip functions).
        """
        if spec.package_type == "Image" or spec.code_dir is None:
            raise DefinitionFileError(f"function {spec.logical_id!r}: PackageType Image needs the Docker backend; "
                                      "the process backend runs CodeUri functions")
        return self.deploy(spec.config(extra_environment), spec.runtime, spec.code_dir, spec.layers)

    def deploy(self, config: FunctionConfig, runtime: str, code_dir: Path, layers: list[Path] | None = None) -> FunctionConfig:
        """Build (or reuse) ``code_dir``'s venv and deploy ``config`` with it."""
        build = self.cache.build(config.name, runtime, Path(code_dir), layers)
        with self._lock:
            self.builds[config.name] = build
            self.configs[config.name] = config
            self.runtimes[config.name] = runtime
        return config

    def remove(self, name: str) -> None:
        with self._lock:
            self.builds.pop(name, None)
            self.configs.pop(name, None)
            self.runtimes.pop(name, None)

    def environment(self, fn: FunctionConfig, **kwargs: Any) -> ProcessEnvironment:
        """The environment factory: a process on the function's own interpreter and code."""
        with self._lock:
            build = self.builds[fn.name]
        return ProcessEnvironment(fn, python=str(build.python), task_root=str(build.task_root),
                                  python_path=build.python_path, **kwargs)


def deploy_app(app: App, functions: LocalFunctions, extra_environment: dict[str, str],
               **service_kwargs: Any) -> LambdaService:
    """Build every function of ``app`` and return a LambdaService running them."""
    configs = [functions.deploy_spec(spec, extra_environment) for spec in app.functions.values()]
    return LambdaService(configs, environment_factory=functions.environment, **service_kwargs)


def ensure_bucket(s3_client: Any, name: str) -> None:
    """Create ``name`` unless it exists."""
    try:
        s3_client.head_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - any miss means create; a real failure shows on create
        s3_client.create_bucket(Bucket=name)
