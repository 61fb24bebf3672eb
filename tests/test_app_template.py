"""Loading SAM templates: translation, Globals, parameters, intrinsics, and refusals named by resource and property."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from emulator.cli.main import main
from emulator.app.template import load_app, parse_parameter_overrides
from emulator.contracts import aws
from emulator.contracts.errors import DefinitionFileError

REPO = Path(__file__).resolve().parent.parent
CSV_REDUCE = REPO / "examples" / "csv-reduce" / "template.yaml"
COSMICAI = REPO / "examples" / "cosmicai" / "template.yaml"

HEADER = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
"""


def write_app(tmp_path: Path, body: str, definition: dict | None = None) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (tmp_path / "sm.json").write_text(json.dumps(definition or {
        "StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}", "End": True}}}))
    path = tmp_path / "template.yaml"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_csv_reduce_globals_parameters_and_substitutions():
    app = load_app(CSV_REDUCE, parse_parameter_overrides(["Currency=USD BatchSize=10"]))
    batch, reduce_ = app.functions["SumBatch"], app.functions["Reduce"]
    # Globals apply, resource properties win over them
    assert (batch.memory_mb, batch.timeout_s, batch.runtime) == (256, 30.0, "python3.11")
    assert reduce_.memory_mb == 512
    assert batch.reserved_concurrency == 4
    # Globals Environment merges with the function's own; !Ref of a parameter and of a bucket
    assert reduce_.environment == {"CURRENCY": "USD", "RESULTS_BUCKET": "csv-reduce-databucket"}
    assert batch.code_dir == CSV_REDUCE.parent / "src" / "batch"
    machine = app.state_machine()
    assert machine.substitutions == {"SumBatchArn": aws.function_arn("SumBatch"), "ReduceArn": aws.function_arn("Reduce"),
                                     "DataBucket": "csv-reduce-databucket", "BatchSize": "10"}
    assert machine.type == "STANDARD"
    # DefinitionUri is kept as text: the unquoted ${BatchSize} is valid only after substitution
    assert '"MaxItemsPerBatch": ${BatchSize}' in machine.definition


def test_cosmicai_points_at_worker_and_the_builtin_definition():
    app = load_app(COSMICAI, {"WorkerMemory": "3008"})
    assert {fn.handler for fn in app.functions.values()} == {
        "worker.initialize.handler", "worker.infer.handler", "worker.summarize.handler"}
    assert app.functions["Worker"].memory_mb == 3008
    assert (app.functions["Worker"].code_dir / "worker" / "infer.py").resolve() == REPO / "worker" / "infer.py"
    assert app.state_machine().definition == (REPO / "statemachines" / "data_parallel.asl.json").read_text()
    assert app.buckets["DataBucket"].name == "lambdatwin-data"


def test_express_type_inline_definition_sub_and_getatt(tmp_path):
    path = write_app(tmp_path, """\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.11
              Environment:
                Variables:
                  WHERE: !Sub "${Data}/${AWS::Region}/${AWS::AccountId}"
                  ARN: !GetAtt Data.Arn
          Data:
            Type: AWS::S3::Bucket
            Properties:
              BucketName: my-data
          Flow:
            Type: AWS::Serverless::StateMachine
            Properties:
              Type: EXPRESS
              Name: quick-flow
              Definition:
                StartAt: A
                States:
                  A: {Type: Task, Resource: "${FnArn}", End: true}
              DefinitionSubstitutions:
                FnArn: !GetAtt Fn.Arn
        """)
    app = load_app(path)
    assert app.functions["Fn"].environment == {"WHERE": f"my-data/{aws.REGION}/{aws.ACCOUNT_ID}",
                                               "ARN": aws.bucket_arn("my-data")}
    sm = app.state_machine("quick-flow")
    assert (sm.type, sm.name) == ("EXPRESS", "quick-flow")
    assert json.loads(sm.definition)["States"]["A"]["Resource"] == "${FnArn}"


@pytest.mark.parametrize("body, needle", [
    ("""\
        Resources:
          Queue:
            Type: AWS::SQS::Queue
        """, "resource 'Queue' has type 'AWS::SQS::Queue', which the twin does not run"),
    ("""\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.11
              Events:
                Api:
                  Type: Api
                  Properties: {Path: /, Method: get}
        """, "resource 'Fn' (AWS::Serverless::Function): property 'Events' is not supported"),
    ("""\
        Globals:
          Function:
            Tracing: Active
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.11}
        """, "Globals.Function property 'Tracing' is not supported"),
    ("""\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: index.handler, Runtime: nodejs20.x}
        """, "property 'Runtime' 'nodejs20.x' is not supported"),
    ("""\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: s3://bucket/code.zip, Handler: app.handler, Runtime: python3.11}
        """, "property 'CodeUri' is an S3 location"),
    ("""\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.11, MemorySize: 20000}
        """, "MemorySize 20000 MB is outside Lambda's 128-10240 MB range"),
    ("""\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.11
              Environment:
                Variables:
                  X: !GetAtt Missing.Arn
        """, "cfn-lint E"),
])
def test_unsupported_or_invalid_templates_are_refused_up_front(tmp_path, body, needle):
    with pytest.raises(DefinitionFileError) as info:
        load_app(write_app(tmp_path, body))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_parameters_overrides_defaults_and_allowed_values(tmp_path):
    with pytest.raises(DefinitionFileError, match="not one of its AllowedValues EUR, USD"):
        load_app(CSV_REDUCE, {"Currency": "GBP"})
    with pytest.raises(DefinitionFileError, match="does not declare"):
        load_app(CSV_REDUCE, {"Nope": "1"})
    assert parse_parameter_overrides(["ParameterKey=Currency,ParameterValue=USD"]) == {"Currency": "USD"}
    assert parse_parameter_overrides(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}


def test_run_template_refusal_is_one_line_and_exit_2(tmp_path, capsys):
    path = write_app(tmp_path, """\
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
        """)
    code = main(["run", "--template", str(path), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "resource 'Table' has type 'AWS::DynamoDB::Table'" in " ".join(err.split())


def test_the_fan_out_simulate_would_model():
    from emulator.app.simulation import fan_out

    cosmic = fan_out(load_app(COSMICAI, {"WorkerMemory": "4096", "WorkerTimeout": "120"}))
    assert (cosmic.state, cosmic.function, cosmic.memory_mb, cosmic.timeout_s, cosmic.express) == (
        "Infer", "Worker", 4096, 120.0, False)
    csv_app = fan_out(load_app(CSV_REDUCE, {"BatchSize": "40"}))
    assert (csv_app.function, csv_app.express, csv_app.max_concurrency, csv_app.items_per_batch,
            csv_app.reserved_concurrency) == ("SumBatch", True, 4, 40, 4)


def test_no_distributed_map_is_said_plainly(tmp_path):
    from emulator.app.simulation import fan_out

    path = write_app(tmp_path, """\
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.11}
          Flow:
            Type: AWS::Serverless::StateMachine
            Properties:
              DefinitionUri: sm.json
              DefinitionSubstitutions: {FnArn: !GetAtt Fn.Arn}
        """)
    with pytest.raises(DefinitionFileError, match="has no Distributed Map"):
        fan_out(load_app(path))
