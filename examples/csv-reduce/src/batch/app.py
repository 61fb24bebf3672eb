"""SumBatch: totals of one batch of CSV rows (region, product, units, price), in one Express child execution.

Event (from the Distributed Map's ItemBatcher): {"Items": [{"region": ..., "units": "3", "price": "9.50", ...}],
"BatchInput": {"source": <csv key>}}.
"""

import logging
import os

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    items = event["Items"]
    totals = {}
    for row in items:
        amount = int(row["units"]) * float(row["price"])
        totals[row["region"]] = round(totals.get(row["region"], 0.0) + amount, 2)
    logger.info("batch of %d rows from %s: %s", len(items), event.get("BatchInput", {}).get("source"), totals)
    return {
        "rows": len(items),
        "totals": totals,
        "currency": os.environ["CURRENCY"],
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function": context.function_name,
    }
