"""The partition format: one ``.pt`` file per data partition (docs/partition-format.md).

A partition is ``torch.save`` of a dict with three tensors (N samples):

============== ================ ======================================
key            shape / dtype    meaning
============== ================ ======================================
``images``     [N, 5, 64, 64]   u, g, r, i, z fluxes (float32)
``magnitudes`` [N, 5]           u, g, r, i, z magnitudes (float32)
``redshifts``  [N]              spectroscopic redshift (float32)
============== ================ ======================================

Also read unchanged, because the CosmicAI scripts save data this way: a
``TensorDataset`` (or tuple/list) of ``(images, magnitudes, redshifts)``,
channels-last images ``[N, 64, 64, 5]``, images already cropped (any square
size of at least 32), redshifts ``[N, 1]``, and float16/bfloat16/float64
tensors, which are converted to float32. Other dict keys are ignored.
Everything else is a :class:`PartitionError`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from worker.layout import BYTES_PER_SAMPLE, IMAGE_SIZE, N_BANDS  # noqa: F401 - re-exported

MIN_IMAGE_SIZE = 32  # the model's centre crop
IMAGE_SHAPE = (N_BANDS, IMAGE_SIZE, IMAGE_SIZE)
KEYS = ("images", "magnitudes", "redshifts")
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_DOC = "see docs/partition-format.md"


class PartitionError(ValueError):
    """A partition file that is not in the documented format."""


@dataclass(frozen=True)
class Partition:
    """One partition's tensors: float32, contiguous, images channels-first."""

    images: torch.Tensor
    magnitudes: torch.Tensor
    redshifts: torch.Tensor

    def __len__(self) -> int:
        return int(self.redshifts.shape[0])

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The dict :func:`save_partition` writes."""
        return {"images": self.images, "magnitudes": self.magnitudes, "redshifts": self.redshifts}


def save_partition(partition: Partition, path: Path | str) -> int:
    """Write a partition in the documented format; returns its size in bytes."""
    torch.save(partition.to_dict(), path)
    return Path(path).stat().st_size


def partition_bytes(partition: Partition) -> bytes:
    """The ``.pt`` bytes of a partition (what an upload to S3 sends)."""
    buf = io.BytesIO()
    torch.save(partition.to_dict(), buf)
    return buf.getvalue()


def _float(value: object, key: str, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise PartitionError(f"{name}: {key!r} is a {type(value).__name__}, expected a torch tensor; {_DOC}")
    if value.dtype not in _FLOAT_TYPES:
        raise PartitionError(f"{name}: {key!r} has dtype {value.dtype}, expected float32; {_DOC}")
    return value.to(torch.float32)


def _images(value: torch.Tensor, name: str) -> torch.Tensor:
    shape = tuple(value.shape)
    if len(shape) == 4 and shape[1] != N_BANDS and shape[3] == N_BANDS:
        value = value.permute(0, 3, 1, 2)  # channels-last [N, H, W, 5], as CosmicAI stores them
        shape = tuple(value.shape)
    if len(shape) != 4 or shape[1] != N_BANDS or shape[2] != shape[3] or shape[2] < MIN_IMAGE_SIZE:
        raise PartitionError(f"{name}: 'images' has shape {list(shape)}, expected [N, 5, 64, 64] "
                             f"(u, g, r, i, z; square, at least {MIN_IMAGE_SIZE} pixels); {_DOC}")
    return value


def _tensors(data: object, name: str) -> tuple[object, object, object]:
    """``(images, magnitudes, redshifts)`` from any of the accepted containers."""
    if isinstance(data, TensorDataset):
        data = data.tensors
    if isinstance(data, (tuple, list)):
        if len(data) != 3:
            raise PartitionError(f"{name}: holds a sequence of {len(data)} items, expected "
                                 f"(images, magnitudes, redshifts) or a dict; {_DOC}")
        return data[0], data[1], data[2]
    if not isinstance(data, dict):
        raise PartitionError(f"{name}: holds a {type(data).__name__}, expected a dict of tensors; {_DOC}")
    for key in KEYS:
        if key not in data:
            present = ", ".join(map(repr, data)) or "nothing"
            raise PartitionError(f"{name}: missing tensor {key!r} (has {present}); {_DOC}")
    return data["images"], data["magnitudes"], data["redshifts"]


def load_partition(source: bytes | Path | str, name: str = "partition") -> Partition:
    """Read and validate a partition from bytes or a path.

    Loads with ``weights_only=True`` (no arbitrary pickles; ``TensorDataset`` allowed).

    Raises:
        PartitionError: unreadable file, missing key, wrong dtype or shape, or
            tensors that disagree on N. The message starts with ``name``.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with torch.serialization.safe_globals([TensorDataset]):
            data = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many exception types
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise PartitionError(f"{name}: not a readable torch .pt file of tensors "
                             f"({type(exc).__name__}: {first_line}); {_DOC}") from exc
    raw_images, raw_magnitudes, raw_redshifts = _tensors(data, name)
    images = _images(_float(raw_images, "images", name), name)
    magnitudes = _float(raw_magnitudes, "magnitudes", name)
    redshifts = _float(raw_redshifts, "redshifts", name)
    if redshifts.dim() == 2 and redshifts.shape[1] == 1:
        redshifts = redshifts[:, 0]
    if magnitudes.dim() != 2 or magnitudes.shape[1] != N_BANDS:
        raise PartitionError(f"{name}: 'magnitudes' has shape {list(magnitudes.shape)}, expected [N, 5]; {_DOC}")
    if redshifts.dim() != 1:
        raise PartitionError(f"{name}: 'redshifts' has shape {list(redshifts.shape)}, expected [N]; {_DOC}")
    counts = (images.shape[0], magnitudes.shape[0], redshifts.shape[0])
    if len(set(counts)) != 1:
        raise PartitionError(f"{name}: tensors disagree on the number of samples "
                             f"(images {counts[0]}, magnitudes {counts[1]}, redshifts {counts[2]})")
    return Partition(images.contiguous(), magnitudes.contiguous(), redshifts.contiguous())
