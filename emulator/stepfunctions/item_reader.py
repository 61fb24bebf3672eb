"""ItemReader of a Distributed Map: the items read from Amazon S3.

AWS rules (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html):

- ``arn:aws:states:::s3:listObjectsV2``: one item per object (Key, Etag, Size, LastModified, StorageClass).
- ``arn:aws:states:::s3:getObject`` with ``ReaderConfig.InputType``:
  ``JSON`` (an array), ``JSONL`` (one JSON value per line), ``CSV`` (rows as objects keyed by the
  header; ``CSVHeaderLocation`` FIRST_ROW or GIVEN with ``CSVHeaders``; ``CSVDelimiter``), or
  ``MANIFEST`` (an S3 Inventory ``manifest.json``; its gzipped CSV files, columns from ``fileSchema``).
- ``MaxItems`` / ``MaxItemsPath`` limit how many items are read (the CSV header row is not an item).

The CSV parsing uses Python's ``csv`` module (quoting and embedded newlines, as RFC 4180).
A row shorter than the header gets empty strings for its missing fields; a header with the same
name twice is rejected (GIVEN headers at definition time, first-row headers when read).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import emulator.stepfunctions.errors as E
from emulator.stepfunctions.definition import S3_LIST_OBJECTS
from emulator.stepfunctions.paths import evaluate
from emulator.stepfunctions.templates import resolve_template

# ReaderConfig.CSVDelimiter names, as the ItemReader page lists them.
CSV_DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}


def read_from_s3(s3: Any, name: str, reader: dict[str, Any], data: Any, ctx: dict, variables: Any = None) -> list[Any]:
    """The items an ItemReader yields, up to its MaxItems.

    Raises:
        StatesError: ``States.ItemReaderFailed`` when S3 or the object's format fails;
            ``States.Runtime`` when ``MaxItemsPath`` is not a non-negative integer.
    """
    if s3 is None:
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: ItemReader needs an S3 client; none was given to the engine")
    config = reader.get("ReaderConfig") or {}
    limit = _max_items(name, config, data, ctx, variables)
    params = resolve_template(reader.get("Parameters", {}), data, ctx)
    try:
        if reader["Resource"] == S3_LIST_OBJECTS:
            items = _list_objects(s3, params)
        else:
            body = s3.get_object(**params)["Body"].read()
            items = _parse(s3, name, config, body)
    except E.StatesError:
        raise
    except Exception as exc:  # noqa: BLE001 - boto3/JSON/CSV/gzip errors all mean the reader failed
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: could not read items from {params}: {exc}") from exc
    if not isinstance(items, list):
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: the JSON at {params} is not an array")
    return items[:limit] if limit else items


def _max_items(name: str, config: dict, data: Any, ctx: dict, variables: Any = None) -> int | None:
    if "MaxItemsPath" not in config:
        return config.get("MaxItems") or None
    value = evaluate(config["MaxItemsPath"], data, ctx, variables)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise E.StatesError(E.RUNTIME, f"state {name!r}: ReaderConfig.MaxItemsPath {config['MaxItemsPath']!r} gave {value!r}; "
                                       "expected a non-negative integer")
    return value or None


def _list_objects(s3: Any, params: dict) -> list[dict[str, Any]]:
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(**params):
        for obj in page.get("Contents", []):
            items.append({"Etag": obj.get("ETag", ""), "Key": obj["Key"], "Size": obj.get("Size", 0),
                          "LastModified": str(obj.get("LastModified", "")), "StorageClass": obj.get("StorageClass", "STANDARD")})
    return items


def _parse(s3: Any, name: str, config: dict, body: bytes) -> list[Any]:
    input_type = config.get("InputType", "JSON")
    if input_type == "CSV":
        if config.get("CSVHeaderLocation", "FIRST_ROW") == "GIVEN":
            return csv_items(name, body.decode(), config["CSVHeaders"], config.get("CSVDelimiter", "COMMA"))
        return csv_items(name, body.decode(), None, config.get("CSVDelimiter", "COMMA"))
    if input_type == "JSONL":
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    if input_type == "MANIFEST":
        return _inventory_items(s3, name, json.loads(body))
    return json.loads(body)


def csv_items(name: str, text: str, headers: list[str] | None, delimiter: str = "COMMA") -> list[dict[str, str]]:
    """CSV rows as objects: short rows padded with empty strings; duplicate headers rejected.

    ``headers`` None means the first row is the header.
    """
    rows = list(csv.reader(io.StringIO(text), delimiter=CSV_DELIMITERS.get(delimiter, delimiter)))
    if headers is None:
        if not rows:
            return []
        headers = rows.pop(0)
    duplicates = sorted({h for h in headers if headers.count(h) > 1})
    if duplicates:
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: the CSV header repeats {', '.join(map(repr, duplicates))}; "
                                                  "column names must be unique")
    return [dict(zip(headers, row + [""] * (len(headers) - len(row)))) for row in rows if row]


def _inventory_items(s3: Any, name: str, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of an S3 Inventory report (CSV format only, as Step Functions supports)."""
    if manifest.get("fileFormat", "CSV") != "CSV":
        raise E.StatesError(E.ITEM_READER_FAILED, f"state {name!r}: S3 Inventory fileFormat {manifest.get('fileFormat')!r} "
                                                  "is not supported; Step Functions reads CSV inventories only")
    columns = [c.strip() for c in str(manifest["fileSchema"]).split(",")]
    bucket = str(manifest["destinationBucket"]).rsplit(":", 1)[-1]  # arn:aws:s3:::BUCKET
    items: list[dict[str, str]] = []
    for entry in manifest.get("files", []):
        raw = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
        text = (gzip.decompress(raw) if entry["key"].endswith(".gz") else raw).decode()
        items.extend(csv_items(name, text, columns))
    return items
