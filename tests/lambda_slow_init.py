"""A handler module whose import (the INIT phase) takes INIT_SLEEP_S seconds, or fails when INIT_FAIL is set."""

import os
import time

print("slow init begins")
time.sleep(float(os.environ.get("INIT_SLEEP_S", "0")))
if os.environ.get("INIT_FAIL"):
    raise RuntimeError("init failed on purpose")


def handler(event, context):
    return {"ok": True}
