"""The rendezvous server as a local OS process for `lambdatwin run --comm ...`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from emulator.s3server import free_port
from emulator.contracts.errors import EnvironmentSetupError


class RendezvousProcess:
    """``python -m rendezvous serve`` on loopback; ``address`` is what workers dial."""

    def __init__(self, host: str = "127.0.0.1", startup_timeout_s: float = 20.0) -> None:
        self.host = host
        self.port = free_port(host)
        self.health_port = free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # structured logs; a file never blocks the server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "RendezvousProcess":
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "rendezvous", "serve", "--host", self.host, "--port", str(self.port),
             "--health-port", str(self.health_port)], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                raise EnvironmentSetupError(f"rendezvous server exited at start: {self._log.read().decode(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(f"http://{self.host}:{self.health_port}/livez", timeout=1).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.__exit__()
        raise EnvironmentSetupError(f"rendezvous server did not answer /livez on port {self.health_port} within {self.startup_timeout_s:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        self._log.close()
