"""The partition format: one ``.pt`` file per data partition.

A partition is ``torch.save`` of a dict with three tensors (N samples):

============== ================ ======================================
key            shape / dtype    meaning
============== ================ ======================================
``images``     [N, 5, 64, 64]   u, g, r, i, z fluxes (float32)
``magnitudes`` [N, 5]           u, g, r, i, z magnitudes (float32)
``redshifts``  [N]              spectroscopic redshift (float32)
============== ================ ======================================

Other keys are ignored. float16/float64 tensors are accepted and converted to
float32 (CosmicAI exports vary); anything else is a :class:`PartitionError`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

IMAGE_SHAPE = (5, 64, 64)
N_BANDS = 5
BYTES_PER_SAMPLE = 4 * (5 * 64 * 64 + 5 + 1)  # float32 images + magnitudes + redshift
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class PartitionError(ValueError):
    """A partition file that is not in the documented format."""


@dataclass(frozen=True)
class Partition:
    images: torch.Tensor
    magnitudes: torch.Tensor
    redshifts: torch.Tensor

    def __len__(self) -> int:
        return int(self.redshifts.shape[0])

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"images": self.images, "magnitudes": self.magnitudes, "redshifts": self.redshifts}


def save_partition(partition: Partition, path: Path | str) -> int:
    """Write a partition; returns its size in bytes."""
    torch.save(partition.to_dict(), path)
    return Path(path).stat().st_size


def _tensor(data: dict, key: str, shape_tail: tuple[int, ...], name: str) -> torch.Tensor:
    if key not in data:
        raise PartitionError(f"{name}: missing tensor {key!r} (has {', '.join(map(repr, data)) or 'nothing'}); "
                             "see docs/partition-format.md")
    value = data[key]
    if not isinstance(value, torch.Tensor):
        raise PartitionError(f"{name}: {key!r} is a {type(value).__name__}, expected a torch tensor")
    if value.dtype not in _FLOAT_TYPES:
        raise PartitionError(f"{name}: {key!r} has dtype {value.dtype}, expected float32")
    if tuple(value.shape[1:]) != shape_tail or value.dim() != 1 + len(shape_tail):
        want = "[N" + "".join(f", {d}" for d in shape_tail) + "]"
        raise PartitionError(f"{name}: {key!r} has shape {list(value.shape)}, expected {want}")
    return value.to(torch.float32)


def load_partition(source: bytes | Path | str, name: str = "partition") -> Partition:
    """Read and validate a partition from bytes or a path.

    Raises:
        PartitionError: unreadable file, missing key, wrong dtype or shape, or
            tensors that disagree on N. The message names ``name``.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        data = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files raise many exception types
        raise PartitionError(f"{name}: not a readable torch .pt file ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(data, dict):
        raise PartitionError(f"{name}: holds a {type(data).__name__}, expected a dict of tensors")
    images = _tensor(data, "images", IMAGE_SHAPE, name)
    magnitudes = _tensor(data, "magnitudes", (N_BANDS,), name)
    redshifts = _tensor(data, "redshifts", (), name)
    sizes = {images.shape[0], magnitudes.shape[0], redshifts.shape[0]}
    if len(sizes) != 1:
        raise PartitionError(f"{name}: tensors disagree on the number of samples "
                             f"(images {images.shape[0]}, magnitudes {magnitudes.shape[0]}, redshifts {redshifts.shape[0]})")
    return Partition(images.contiguous(), magnitudes.contiguous(), redshifts.contiguous())
