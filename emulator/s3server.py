"""A local S3-compatible endpoint: moto's server in its own OS process.

Workers and handlers reach it exactly as they reach real S3: through boto3 with
``AWS_ENDPOINT_URL`` set (see :meth:`LocalS3Server.client_environment`). It is a
real HTTP server on loopback, not an in-process mock, so multi-process runs
share one bucket namespace.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

import boto3
import botocore.session

from emulator.contracts import aws

# moto accepts any credentials; fixed fake ones keep boto3 from searching the
# machine's credential chain (and from ever sending real keys to it).
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lambdatwin",
    "AWS_SECRET_ACCESS_KEY": "lambdatwin",
    "AWS_DEFAULT_REGION": aws.REGION,
}


def local_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for a local-cloud endpoint, with the local credentials.

    It ignores the user's ``AWS_PROFILE`` and config files: the twin must run on a
    machine whose profile names an account it cannot reach, or none at all.
    """
    isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session = boto3.session.Session(
        botocore_session=isolated, region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    return session.client(service, endpoint_url=endpoint_url)


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalS3Server:
    """Start/stop moto's server; use as a context manager.

    Args:
        host: address to bind; loopback by default.
        port: port to bind; a free one when None.
        startup_timeout_s: how long to wait for the server to answer.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, startup_timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None  # the server's request log (a temp file)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_environment(self) -> dict[str, str]:
        """Environment variables that point boto3 (in any process) at this endpoint."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ENDPOINT_URL_S3": self.endpoint_url, **LOCAL_CREDENTIALS}

    def start(self) -> "LocalS3Server":
        if self._proc is not None:
            return self
        cmd = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        # moto logs every request; a file (not a pipe nobody drains) keeps it from blocking.
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"local S3 endpoint (moto server) exited at start on port {self.port}: {err[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"local S3 endpoint did not answer on {self.endpoint_url} within {self.startup_timeout_s:.0f} s; "
            "is `moto[server]` installed (pip install -e .)?"
        )

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
        self._proc = None

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (for the orchestrator and tests)."""
        return local_client("s3", self.endpoint_url)

    def __enter__(self) -> "LocalS3Server":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
