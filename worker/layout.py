"""How data is laid out: bytes per sample, partition sizes, and which rank reads which partitions.

Torch-free and import-free (standard library only), so the workers
(``worker.datagen``, ``worker.partitions``, ``worker.initialize``) and the
capacity model (``sim``) share one definition of the job's layout and cannot
drift apart.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

N_BANDS = 5
IMAGE_SIZE = 64
# One sample of the documented partition format (docs/partition-format.md):
# float32 5x64x64 image + 5 magnitudes + 1 redshift.
BYTES_PER_SAMPLE = 4 * (N_BANDS * IMAGE_SIZE * IMAGE_SIZE + N_BANDS + 1)

T = TypeVar("T")


def samples_per_partition(partition_size_bytes: int, bytes_per_sample: float = BYTES_PER_SAMPLE) -> int:
    """How many samples make a partition of about this size (at least one)."""
    return max(1, int(partition_size_bytes // bytes_per_sample))


def partition_plan(data_size_bytes: int, partition_size_bytes: int,
                   bytes_per_sample: float = BYTES_PER_SAMPLE) -> list[int]:
    """Samples in each partition so the total is about ``data_size_bytes``.

    Full partitions of ``partition_size_bytes``, then one shorter partition for
    the rest when it holds at least one sample.

    Raises:
        ValueError: a size that is not positive.
    """
    if data_size_bytes <= 0 or partition_size_bytes <= 0:
        raise ValueError("data and partition sizes must be positive")
    full, rest = divmod(data_size_bytes, partition_size_bytes)
    plan = [samples_per_partition(partition_size_bytes, bytes_per_sample)] * full
    if rest >= bytes_per_sample or not plan:
        plan.append(samples_per_partition(rest, bytes_per_sample))
    return plan


def rank_counts(n_keys: int, world_size: int) -> list[int]:
    """How many keys each rank gets: the first ``n_keys % world`` ranks take one more.

    Raises:
        ValueError: more ranks than keys (a rank would have nothing to do), or no rank.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if world_size > n_keys:
        raise ValueError(f"world_size {world_size} is larger than the {n_keys} partitions; "
                         "use at most one rank per partition")
    base, extra = divmod(n_keys, world_size)
    return [base + (1 if rank < extra else 0) for rank in range(world_size)]


def assign(keys: Sequence[T], world_size: int) -> list[list[T]]:
    """Contiguous runs of keys per rank, at most ``ceil(len / world)`` each and none empty.

    The first ``len % world`` ranks take one key more than the rest, so 10 keys
    on 4 ranks are 3, 3, 2, 2 (a plain ceiling chunking would give 3, 3, 3, 1).

    Raises:
        ValueError: more ranks than keys (a rank would have nothing to do).
    """
    out, start = [], 0
    for n in rank_counts(len(keys), world_size):
        out.append(list(keys[start:start + n]))
        start += n
    return out
