"""Start and stop a real ``lambdatwin serve`` process for tests, and build deployment zips."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from emulator.contracts import aws
from emulator.s3server import free_port

REPO = Path(__file__).resolve().parent.parent
CSV_REDUCE = REPO / "examples" / "csv-reduce"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lambdatwin", "AWS_SECRET_ACCESS_KEY": "lambdatwin", "AWS_DEFAULT_REGION": aws.REGION,
               # StartSyncExecution's host is prefixed `sync-`, which does not resolve for 127.0.0.1.
               "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}


class ServeProcess:
    """``lambdatwin serve`` (``python -m emulator.cli.main serve``) on a free port; ``stop()`` sends SIGTERM as a user's Ctrl-C would."""

    def __init__(self, state_dir: Path, runs_dir: Path, template: Path | None = None, port: int | None = None,
                 backend: str = "process") -> None:
        self.backend = backend
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_dir, self.runs_dir, self.template = state_dir, runs_dir, template
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir.parent / f"serve-{self.port}-{time.time_ns()}.log"

    def start(self, timeout_s: float = 120.0) -> "ServeProcess":
        cmd = [sys.executable, "-m", "emulator.cli.main", "serve", "--port", str(self.port), "--state-dir", str(self.state_dir),
               "--runs-dir", str(self.runs_dir)]
        if self.template:
            cmd += ["--template", str(self.template)]
        cmd += ["--backend", self.backend]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **CREDENTIALS})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            if "lambdatwin serve on" in self.log.read_text():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/", timeout=2).close()
            return True
        except (urllib.error.URLError, OSError):
            return False


def zip_dir(directory: Path, extra: Path | None = None) -> bytes:
    """A deployment package: the files of ``directory`` (and of ``extra``, e.g. vendored packages) at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for root in (directory, extra):
            if root is None:
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.name != "requirements.txt":
                    archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def vendored(requirements: Path, target: Path) -> Path:
    """``pip install -r requirements --target`` (what `sam build` puts into a zip)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                    str(requirements), "--target", str(target)], check=True)
    return target


def csv_reduce_definition(bucket: str, batch_size: int = 25) -> str:
    """The example's ASL with its substitutions done, as CloudFormation would."""
    text = (CSV_REDUCE / "statemachines" / "csv_reduce.asl.json").read_text()
    for key, value in {"SumBatchArn": aws.function_arn("SumBatch"), "ReduceArn": aws.function_arn("Reduce"),
                       "DataBucket": bucket, "BatchSize": str(batch_size)}.items():
        text = text.replace("${" + key + "}", value)
    return text
