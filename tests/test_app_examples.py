"""Both example apps run end to end through ``run_template`` (``lambdatwin run --template``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emulator.cli.main import main
from emulator.contracts import aws, runrecord

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def run(argv: list[str], runs: Path) -> int:
    """``lambdatwin run --template ...``, through the CLI."""
    return main(["run", *argv, "--runs-dir", str(runs), "--state-dir", str(runs.parent / "state")])


def expected_totals(path: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            totals[row["region"]] = totals.get(row["region"], 0.0) + int(row["units"]) * float(row["price"])
    return {k: round(v, 2) for k, v in totals.items()}


def test_csv_reduce_runs_as_a_template(tmp_path):
    ex = EXAMPLES / "csv-reduce"
    runs = tmp_path / "runs"
    code = run(["--template", str(ex / "template.yaml"), "--input", str(ex / "input.json"),
                "--upload", f"{ex / 'data'}=s3://csv-reduce-databucket/input",
                "--parameter-overrides", "Currency=USD", "BatchSize=30"], runs)
    assert code == 0
    (run_dir,) = runs.iterdir()
    record = runrecord.load(run_dir)
    assert record.execution["status"] == "SUCCEEDED"
    out = record.execution["output"]
    assert out["currency"] == "USD" and out["rows"] == 120
    assert out["batches"] == 4  # ItemBatcher: 120 rows / MaxItemsPerBatch 30 (a parameter, substituted)
    assert out["totals"] == pytest.approx(expected_totals(ex / "data" / "sales.csv"))
    # one Distributed Map run of Express children, each named by its ARN
    (map_run,) = record.map_runs
    assert map_run["item_counts"]["succeeded"] == 120  # items, not batches (DescribeMapRun itemCounts)
    assert map_run["execution_counts"]["succeeded"] == 4  # one child per batch
    # Express children, under the Map Run label (a UUID when the Map gives no Label)
    assert all(f":express:SalesReport/{map_run['label']}:" in c["execution_arn"] for c in map_run["children"])
    functions = {inv.function for inv in record.invocations}
    assert functions == {"SumBatch", "Reduce"}
    # the same log streams as `lambdatwin run` writes, with the Reduce table printed by tabulate
    lines = runrecord.read_log_lines(run_dir)
    assert sum(1 for line in lines if line.startswith("REPORT RequestId:")) == len(record.invocations)
    assert any(line.startswith("region") and "USD" in line for line in lines)
    sum_batch = [inv for inv in record.invocations if inv.function == "SumBatch"]
    assert all(inv.memory_size_mb == 256 for inv in sum_batch)


@pytest.mark.slow
def test_cosmicai_runs_as_a_template(tmp_path):
    from worker.datagen import generate_partitions

    data = tmp_path / "data"
    generate_partitions(2_000_000, 1_000_000, 0, data)
    ex = EXAMPLES / "cosmicai"
    runs = tmp_path / "runs"
    code = run(["--template", str(ex / "template.yaml"), "--input", str(ex / "input.json"),
                "--upload", f"{data}=s3://lambdatwin-data/data", "--parameter-overrides", "WorkerMemory=1024"], runs)
    assert code == 0
    (run_dir,) = runs.iterdir()
    record = runrecord.load(run_dir)
    assert record.execution["status"] == "SUCCEEDED"
    assert record.summary["complete"] is True
    assert record.summary["rows"] > 0
    workers = record.invocations_of("worker")
    assert len(workers) == 2 and all(inv.memory_size_mb == 1024 for inv in workers)
    assert {inv.function for inv in record.invocations} == {"Initialize", "Worker", "Summarize"}
    assert record.execution["arn"].startswith(aws.execution_arn("DataParallel", ""))
    assert json.loads(json.dumps(record.map_runs[0]["item_counts"]))["succeeded"] == 2


def test_an_executions_log_lines_are_its_own():
    from emulator.app.record import lines_of
    from emulator.contracts.lambdas import InvocationRecord

    stream = ("/aws/lambda/f", "2026/12/01/[$LATEST]abc")
    lines = ["init output", "START RequestId: a Version: $LATEST", "a says hi", "END RequestId: a", "REPORT RequestId: a\tx",
             "START RequestId: b Version: $LATEST", "b says hi", "END RequestId: b", "REPORT RequestId: b\tx"]

    def rec(rid: str) -> InvocationRecord:
        return InvocationRecord("f", rid, 0, 0, 0, 0, 128, 1, None, "success", log_group=stream[0], log_stream=stream[1])

    assert lines_of({stream: lines}, [rec("b")])[stream] == lines[5:]
    assert lines_of({stream: lines}, [rec("a")])[stream] == lines[:5]
