"""Reduce: combine the SumBatch results the Map's ResultWriter put in S3 into one report.

Event: {"manifest": {"Bucket": ..., "Key": <manifest.json>}, "report_key": <where to write the report>}.
Uses boto3 (provided by the Lambda runtime) and tabulate (from requirements.txt).
"""

import json
import os

import boto3
from tabulate import tabulate

s3 = boto3.client("s3")


def handler(event, context):
    manifest_ref = event["manifest"]
    manifest = json.loads(s3.get_object(Bucket=manifest_ref["Bucket"], Key=manifest_ref["Key"])["Body"].read())
    totals, rows, batches = {}, 0, 0
    for entry in manifest["ResultFiles"].get("SUCCEEDED", []):
        for child in json.loads(s3.get_object(Bucket=manifest["DestinationBucket"], Key=entry["Key"])["Body"].read()):
            out = json.loads(child["Output"])
            batches += 1
            rows += out["rows"]
            for region, amount in out["totals"].items():
                totals[region] = round(totals.get(region, 0.0) + amount, 2)
    table = tabulate(sorted(totals.items()), headers=["region", os.environ["CURRENCY"]])
    print(table)
    report = {"rows": rows, "batches": batches, "totals": totals, "currency": os.environ["CURRENCY"], "table": table}
    s3.put_object(Bucket=os.environ["RESULTS_BUCKET"], Key=event["report_key"], Body=json.dumps(report).encode())
    return report
