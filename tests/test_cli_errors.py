"""Bad CLI input: exit code 2, one clear line on stderr, never a traceback, and no work started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli.main import main

REPO = Path(__file__).resolve().parent.parent

BAD_INPUTS = [
    # run: every flag checked against AWS's own limits
    ["run", "--memory", "64"],
    ["run", "--memory", "10241"],
    ["run", "--memory", "lots"],
    ["run", "--timeout", "0"],
    ["run", "--timeout", "901"],
    ["run", "--timeout", "nan"],
    ["run", "--ephemeral-storage", "511"],
    ["run", "--ephemeral-storage", "10241"],
    ["run", "--max-concurrency", "-1"],
    ["run", "--max-concurrency", "10001"],
    ["run", "--data-size", "1e400"],
    ["run", "--data-size", "lots"],
    ["run", "--data-size", "-5MB"],
    ["run", "--data-size", "0"],
    ["run", "--data-size", "1000TB"],
    ["run", "--data-size", "2PB"],
    ["run", "--partition-size", "1B", "--data-size", "1MB"],
    ["run", "--partition-size", "200MB", "--data-size", "100MB"],
    ["run", "--workers", "100000", "--data-size", "100MB"],
    ["run", "--workers", "0"],
    ["run", "--workers", "abc"],
    ["run", "--workers", "8", "--partition-size", "50MB"],
    ["run", "--batch-size", "0"],
    ["run", "--punch-timeout", "0"],
    ["run", "--comm", "pigeon"],
    ["run", "--seed", "-1"],
    ["run", "--definition", "/nonexistent/machine.json"],
    ["run", "--runs-dir", "/proc/lambdatwin-runs"],
    ["run", "--data-cache", "/proc/lambdatwin-cache"],
    ["run", "--prices", "/nonexistent/prices.json"],
    # generate
    ["generate", "--out", "/proc/lambdatwin-out"],
    ["generate", "--data-size", "1e400", "--out", "{tmp}"],
    ["generate", "--partition-size", "1B", "--data-size", "1MB", "--out", "{tmp}"],
    ["generate", "--data-size", "1000TB", "--out", "{tmp}"],
    # emulate: checked before Docker is touched
    ["emulate", "--memory", "64"],
    ["emulate", "--nat", "carrier-grade"],
    ["emulate", "--loss", "200"],
    ["emulate", "--workers-per-nat", "0"],
    ["emulate", "--latency-ms", "-1"],
    # simulate, plan, calibrate: the same job flags, the same checks
    ["simulate", "--memory", "64"],
    ["simulate", "--data-size", "1e400"],
    ["simulate", "--timeout", "0"],
    ["simulate", "--max-concurrency", "10001"],
    ["simulate", "--seeds", "0"],
    ["simulate", "--failure-rate", "2"],
    ["simulate", "--calibration", "/nonexistent/calibration.json"],
    ["simulate", "--prices", "/nonexistent/prices.json"],
    ["simulate", "--definition", "/nonexistent/machine.json"],
    ["simulate", "--workers", "8", "--partition-size", "50MB"],
    ["simulate", "--account-concurrency", "0"],
    ["plan", "--deadline", "soon"],
    ["plan", "--memories", "64,128"],
    ["plan", "--partition-sizes", ","],
    ["plan", "--max-concurrencies", "20000"],
    ["calibrate", "/nonexistent/run"],
    ["calibrate", "--logs", "/nonexistent/log.txt"],
    ["calibrate", "--bytes-read", "lots"],
    ["calibrate", "--package-mb", "0"],
    ["simulate", "--control-timeout", "0"],
    ["simulate", "--control-timeout", "901"],
    # rendezvous
    ["rendezvous", "serve", "--port", "70000"],
    ["rendezvous", "serve", "--port", "-5"],
    # aws
    ["aws", "run", "--name", "x", "--memory", "64"],
    ["aws", "deploy", "--name", "x", "--worker-memory", "64"],
    ["aws", "deploy", "--name", "x", "--worker-timeout", "0"],
    ["aws", "collect", "--execution-arn", "not-an-arn"],
    # no such command
    ["fly"],
]


def _render(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[" ".join(a) for a in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(_render(argv, tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_bad_definition_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "machine.json"
    bad.write_text("{not json")
    assert main(["run", "--definition", str(bad), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not valid JSON" in err
    bad.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": True}}}))
    assert main(["run", "--definition", str(bad), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_bad_calibration_and_price_files_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for argv in (["simulate", "--calibration", str(bad)], ["simulate", "--prices", str(bad)],
                 ["calibrate", str(bad), "-o", str(tmp_path / "c.json")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_refusals_state_the_numbers(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--data-size", "1000TB"]) == 2
    err = capsys.readouterr().err
    assert "disk" in err and "TB" in err and "free" in err
    assert main(["run", "--workers", "100000", "--data-size", "100MB"]) == 2
    assert "smaller than one sample" in capsys.readouterr().err


def test_a_missing_aws_profile_is_one_line(tmp_path):
    # A real process: the profile is read by botocore when the session is made.
    env = {**os.environ, "AWS_PROFILE": "lambdatwin-no-such-profile", "AWS_CONFIG_FILE": str(tmp_path / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")}
    proc = subprocess.run([sys.executable, "-m", "emulator.cli.main", "aws", "run", "--name", "demo",
                           "--region", "us-east-1"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "lambdatwin-no-such-profile" in proc.stderr
