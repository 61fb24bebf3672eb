"""Apps on the Docker backend (``emulate --template``): per-function images, code edits without rebuilds,
PackageType Image functions built from their Dockerfile, nothing left behind."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from emulator.cli.main import main
from emulator.contracts import runrecord
from tests.docker_helpers import leftovers

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def emulate(argv: list[str], runs: Path) -> runrecord.RunRecord:
    before = set(runs.iterdir()) if runs.exists() else set()
    assert main(["emulate", *argv, "--runs-dir", str(runs)]) == 0
    (run_dir,) = set(runs.iterdir()) - before
    return runrecord.load(run_dir)


def test_csv_reduce_on_docker(docker, tmp_path):
    ex = REPO / "examples" / "csv-reduce"
    record = emulate(["--template", str(ex / "template.yaml"), "--input", str(ex / "input.json"),
                      "--upload", f"{ex / 'data'}=s3://csv-reduce-databucket/input"], tmp_path / "runs")
    assert record.backend == "docker" and record.execution["status"] == "SUCCEEDED"
    assert record.execution["output"]["rows"] == 120 and record.execution["output"]["batches"] == 5
    images = record.config["docker"]["images"]
    assert images["SumBatch"] != images["Reduce"]  # Reduce's requirements.txt makes its own image
    assert leftovers(docker, record.run_id) == []


IMAGE_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Zipped:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: zipped/, Handler: app.handler, Runtime: python3.11}
  Imaged:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      MemorySize: 256
    Metadata:
      DockerContext: ./imaged
      Dockerfile: Dockerfile
      DockerBuildArgs: {GREETING: hello-from-build}
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition:
        StartAt: Z
        States:
          Z: {Type: Task, Resource: "${Z}", ResultPath: "$.z", Next: I}
          I: {Type: Task, Resource: "${I}", ResultPath: "$.i", End: true}
      DefinitionSubstitutions:
        Z: !GetAtt Zipped.Arn
        I: !GetAtt Imaged.Arn
"""
DOCKERFILE = """\
ARG LAMBDATWIN_PYTHON_BASE
FROM ${LAMBDATWIN_PYTHON_BASE}
ARG GREETING
ENV GREETING=${GREETING}
COPY image_app.py /var/task/
CMD ["image_app.handler"]
"""


def test_image_function_and_code_edits_without_rebuild(docker, tmp_path):
    (tmp_path / "zipped").mkdir()
    (tmp_path / "zipped" / "app.py").write_text("def handler(event, context):\n    return 'v1'\n")
    (tmp_path / "imaged").mkdir()
    (tmp_path / "imaged" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "imaged" / "image_app.py").write_text(textwrap.dedent("""\
        import os
        def handler(event, context):
            return {"greeting": os.environ["GREETING"], "task_root": os.environ["LAMBDA_TASK_ROOT"],
                    "memory": context.memory_limit_in_mb}
        """))
    (tmp_path / "template.yaml").write_text(IMAGE_TEMPLATE)
    first = emulate(["--template", str(tmp_path / "template.yaml")], tmp_path / "runs")
    out = first.execution["output"]
    assert out["z"] == "v1"
    assert out["i"] == {"greeting": "hello-from-build", "task_root": "/var/task", "memory": "256"}

    (tmp_path / "zipped" / "app.py").write_text("def handler(event, context):\n    return 'v2'\n")
    second = emulate(["--template", str(tmp_path / "template.yaml")], tmp_path / "runs")
    assert second.execution["output"]["z"] == "v2"  # the edit took effect on the next cold start
    assert second.config["docker"]["images"] == first.config["docker"]["images"]  # and rebuilt nothing
    assert leftovers(docker, second.run_id) == []
    shutil.rmtree(tmp_path / "runs")


@pytest.mark.slow
def test_cosmicai_on_docker(docker, tmp_path):
    from worker.datagen import generate_partitions

    generate_partitions(2_000_000, 1_000_000, 0, tmp_path / "data")
    ex = REPO / "examples" / "cosmicai"
    record = emulate(["--template", str(ex / "template.yaml"), "--input", str(ex / "input.json"),
                      "--upload", f"{tmp_path / 'data'}=s3://lambdatwin-data/data",
                      "--parameter-overrides", "WorkerMemory=1024"], tmp_path / "runs")
    assert record.execution["status"] == "SUCCEEDED" and record.summary["complete"] is True
    assert len(record.invocations_of("worker")) == 2
    assert json.loads(json.dumps(record.config["docker"]["images"]))["Worker"].startswith("lambdatwin/fn:")
