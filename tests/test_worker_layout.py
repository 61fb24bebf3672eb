"""worker/layout.py: the one definition of bytes per sample, partition plans and rank assignment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worker.layout import BYTES_PER_SAMPLE, assign, partition_plan, rank_counts, samples_per_partition


def test_layout_is_torch_free_and_imports_nothing_from_the_project():
    code = ("import sys, worker.layout; "
            "bad = [m for m in sys.modules if m == 'torch' or m.split('.')[0] in ('emulator', 'sim', 'realaws', 'rendezvous')]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_plan_and_bytes_per_sample():
    assert BYTES_PER_SAMPLE == 81_944
    assert partition_plan(100_000_000, 25_000_000) == [305] * 4
    assert partition_plan(60_000_000, 25_000_000) == [305, 305, 122]
    # Real CosmicAI data: about 19,558 bytes per sample, so 25 MB holds 1,278 samples.
    assert samples_per_partition(25_000_000, 19_558) == 1278


def test_assign_is_contiguous_and_balanced():
    assert [len(s) for s in assign(list(range(10)), 4)] == [3, 3, 2, 2]
    assert sum(assign(list("abcdefg"), 3), []) == list("abcdefg")
    assert rank_counts(41, 41) == [1] * 41
    with pytest.raises(ValueError, match="larger than the 3 partitions"):
        assign(["a", "b", "c"], 4)


def test_workers_use_the_shared_layout():
    import worker.datagen
    import worker.initialize
    import worker.layout
    import worker.partitions

    assert worker.initialize.assign is worker.layout.assign
    assert worker.datagen.partition_plan is worker.layout.partition_plan
    assert worker.partitions.BYTES_PER_SAMPLE is worker.layout.BYTES_PER_SAMPLE
