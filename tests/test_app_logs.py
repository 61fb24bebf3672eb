"""``lambdatwin logs FUNCTION --follow`` prints lines as they are filed (by serve, invoke or run --template)."""

from __future__ import annotations

import subprocess
import sys
import time

from emulator.app.logstore import LogStore



def test_logs_follow_prints_new_lines_of_every_stream(tmp_path):
    store = LogStore(tmp_path / "state" / "logs")
    store.append("/aws/lambda/fn", "2026/12/01/[$LATEST]aaa", ["START RequestId: 1 Version: $LATEST", "first"])
    store.append("/aws/lambda/other", "2026/12/01/[$LATEST]ccc", ["not this function"])
    proc = subprocess.Popen([sys.executable, "-m", "emulator.cli.main", "logs", "fn", "--follow", "--state-dir", str(tmp_path / "state")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip().startswith("START RequestId: 1")
        assert proc.stdout.readline().strip() == "first"
        store.append("/aws/lambda/fn", "2026/12/01/[$LATEST]aaa", ["second"])
        store.append("/aws/lambda/fn", "2026/12/01/[$LATEST]bbb", ["from a new environment"])
        started = time.monotonic()
        assert {proc.stdout.readline().strip(), proc.stdout.readline().strip()} == {"second", "from a new environment"}
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()


def test_logs_without_any_is_an_actionable_error(tmp_path):
    out = subprocess.run([sys.executable, "-m", "emulator.cli.main", "logs", "nothing", "--state-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no logs of nothing" in out.stderr
