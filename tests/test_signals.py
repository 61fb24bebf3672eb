"""SIGTERM stops ``lambdatwin run`` as cleanly as Ctrl-C: nothing it started outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_run_leaves_nothing_behind(signum, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli.main", "run", "--workers", "2", "--data-size", "60MB",
         "--batch-size", "1", "--runs-dir", str(tmp_path / "runs"), "--data-cache", str(tmp_path / "cache")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 200
    workers_running = False
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= _children(proc.pid)
        if sum("worker.infer.handler" in _cmdline(p) for p in seen if _alive(p)) >= 1:
            workers_running = True
            break
        time.sleep(0.1)
    assert workers_running, "the run never started a worker"
    seen |= _children(proc.pid)
    assert any("moto" in _cmdline(p) or "s3server" in _cmdline(p) for p in seen), "no S3 server seen"
    proc.send_signal(signum)
    stderr = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    assert not [p for p in seen if _alive(p)], [(_cmdline(p), p) for p in seen if _alive(p)]
    assert not list(tmp.iterdir()), list(tmp.iterdir())
