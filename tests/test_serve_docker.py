"""``lambdatwin serve --backend docker``: the template's functions run in containers and reach the
server (S3) through the Docker network's gateway; a function created through the API runs there too."""

from __future__ import annotations

import json

import pytest

from emulator.contracts import aws
from tests.serve_helpers import CSV_REDUCE, ServeProcess
from tests.test_serve_boto3 import ECHO, ROLE, clients, wait_done, zip_of

pytestmark = pytest.mark.docker


def test_serve_on_docker_runs_the_template_in_containers(docker, tmp_path):
    server = ServeProcess(tmp_path / "state", tmp_path / "runs", template=CSV_REDUCE / "template.yaml",
                          backend="docker").start(timeout_s=600)
    try:
        c = clients(server.url)
        c["s3"].upload_file(str(CSV_REDUCE / "data" / "sales.csv"), "csv-reduce-databucket", "input/sales.csv")
        arn = c["stepfunctions"].start_execution(stateMachineArn=aws.state_machine_arn("SalesReport"), input=json.dumps(
            {"csv_key": "input/sales.csv", "report_key": "reports/docker.json"}))["executionArn"]
        desc = wait_done(c["stepfunctions"], arn, timeout_s=300)
        assert desc["status"] == "SUCCEEDED", desc
        # Reduce (in a container) read the Map's results from serve's S3 and wrote the report there.
        report = json.loads(c["s3"].get_object(Bucket="csv-reduce-databucket", Key="reports/docker.json")["Body"].read())
        assert report["rows"] == 120
        running = [ctr.name for ctr in docker.containers.list() if ctr.name.startswith("lt-") and "SumBatch" in ctr.name]
        assert running, "warm SumBatch environments are containers"
        c["lambda"].create_function(FunctionName="echo", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                    Code={"ZipFile": zip_of(ECHO)})
        out = json.loads(c["lambda"].invoke(FunctionName="echo", Payload=b'{"x": 1}')["Payload"].read())
        assert out["event"] == {"x": 1}
    finally:
        server.stop()
    assert not [ctr.name for ctr in docker.containers.list(all=True) if "SumBatch" in ctr.name and ctr.name.startswith("lt-")]


def test_serve_on_docker_runs_an_image_function_from_its_dockerfile(docker, tmp_path):
    import textwrap

    from tests.test_app_docker import DOCKERFILE, IMAGE_TEMPLATE

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "zipped").mkdir()
    (tmp_path / "app" / "zipped" / "app.py").write_text("def handler(event, context):\n    return 'zip'\n")
    (tmp_path / "app" / "imaged").mkdir()
    (tmp_path / "app" / "imaged" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "app" / "imaged" / "image_app.py").write_text(textwrap.dedent("""\
        import os
        def handler(event, context):
            return {"greeting": os.environ["GREETING"], "event": event}
        """))
    (tmp_path / "app" / "template.yaml").write_text(IMAGE_TEMPLATE)
    server = ServeProcess(tmp_path / "state", tmp_path / "runs", template=tmp_path / "app" / "template.yaml",
                          backend="docker").start(timeout_s=600)
    try:
        c = clients(server.url)
        assert c["lambda"].get_function(FunctionName="Imaged")["Configuration"]["PackageType"] == "Image"
        out = json.loads(c["lambda"].invoke(FunctionName="Imaged", Payload=b'{"n": 2}')["Payload"].read())
        assert out == {"greeting": "hello-from-build", "event": {"n": 2}}
        arn = c["stepfunctions"].start_execution(stateMachineArn=aws.state_machine_arn("Flow"), input="{}")["executionArn"]
        desc = wait_done(c["stepfunctions"], arn, timeout_s=300)
        assert json.loads(desc["output"])["z"] == "zip"
    finally:
        server.stop()
