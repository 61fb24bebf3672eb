"""Synthetic, physically plausible 5-band galaxy partitions, reproducible from a seed.

Each galaxy gets a redshift from an SDSS-main-sample-like distribution; its
apparent r magnitude follows from an absolute magnitude and the luminosity
distance, its colours redden with redshift and galaxy type, its angular size
shrinks with the angular-diameter distance, and its light follows a Sérsic
profile (n = 1 discs to n = 4 ellipticals) with random ellipticity and angle,
blurred by a Gaussian PSF and overlaid with sky noise. Fluxes are in SDSS
nanomaggies (m = 22.5 - 2.5 log10 flux), pixels are 0.396".
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable

import torch

from worker.layout import BYTES_PER_SAMPLE, partition_plan, samples_per_partition  # noqa: F401 - re-exported
from worker.partitions import IMAGE_SHAPE, Partition, save_partition

HUBBLE_DISTANCE_MPC = 4282.7  # c / H0 with H0 = 70 km/s/Mpc
PIXEL_ARCSEC = 0.396
PSF_SIGMA_PX = 1.2
SKY_SIGMA = torch.tensor([0.25, 0.08, 0.10, 0.14, 0.45])  # nanomaggies per pixel, u g r i z
MAG_ERROR = torch.tensor([0.08, 0.02, 0.02, 0.02, 0.05])
_CHUNK = 128  # galaxies rendered at once: bounds memory to ~10 MB per chunk


def _psf_kernel() -> torch.Tensor:
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / PSF_SIGMA_PX) ** 2)
    return k / k.sum()


def _blur(images: torch.Tensor) -> torch.Tensor:
    # Separable Gaussian: one 1-D pass per axis over every (galaxy, band) image.
    n, c, h, w = images.shape
    k = _psf_kernel()
    flat = images.reshape(n * c, 1, h, w)
    flat = torch.nn.functional.conv2d(flat, k.view(1, 1, 1, -1), padding=(0, k.numel() // 2))
    flat = torch.nn.functional.conv2d(flat, k.view(1, 1, -1, 1), padding=(k.numel() // 2, 0))
    return flat.reshape(n, c, h, w)


def render_galaxies(n: int, generator: torch.Generator) -> Partition:
    """``n`` synthetic galaxies (images, observed magnitudes, true redshifts)."""
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    # Redshift: Gamma(2, 0.05) resembles the SDSS main galaxy sample (median ~0.1).
    z = (-0.05 * torch.log(rand(n) * rand(n) + 1e-12)).clamp(0.005, 0.6)
    kind = rand(n)  # 0 = blue star-forming disc ... 1 = red elliptical
    d_l = HUBBLE_DISTANCE_MPC * z * (1 + z / 2)  # low-z luminosity distance
    d_a = d_l / (1 + z) ** 2
    m_r = (-21.0 + 0.8 * randn(n)) + 5 * torch.log10(d_l) + 25 + 2.5 * z  # M_r + distance modulus + K-correction
    u_g = 1.0 + 0.8 * kind + 1.5 * z + 0.08 * randn(n)
    g_r = 0.3 + 0.5 * kind + 1.0 * z + 0.05 * randn(n)
    r_i = 0.2 + 0.2 * kind + 0.6 * z + 0.04 * randn(n)
    i_z = 0.1 + 0.15 * kind + 0.4 * z + 0.04 * randn(n)
    m_g = m_r + g_r
    mags = torch.stack([m_g + u_g, m_g, m_r, m_r - r_i, m_r - r_i - i_z], dim=1)

    r_e_kpc = torch.exp(math.log(4.0) + 0.3 * randn(n)) * (1.0 - 0.3 * kind)
    r_e_px = (206265.0 * r_e_kpc / (d_a * 1000.0) / PIXEL_ARCSEC).clamp(0.8, 20.0)
    sersic = 1.0 + 3.0 * kind
    b_n = 2.0 * sersic - 1.0 / 3.0
    q = 0.3 + 0.7 * rand(n)
    phi = math.pi * rand(n)
    offset = 0.5 * randn(n, 2)

    size = IMAGE_SHAPE[-1]
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    dx = xx[None] - offset[:, 0, None, None]
    dy = yy[None] - offset[:, 1, None, None]
    cos, sin = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
    xr = dx * cos + dy * sin
    yr = (-dx * sin + dy * cos) / q[:, None, None]
    radius = torch.sqrt(xr**2 + yr**2) / r_e_px[:, None, None]
    profile = torch.exp(-b_n[:, None, None] * (radius.clamp_min(1e-6) ** (1.0 / sersic[:, None, None]) - 1.0))
    profile = profile / profile.sum(dim=(1, 2), keepdim=True)

    flux = 10.0 ** (-0.4 * (mags - 22.5))  # nanomaggies
    images = _blur(profile[:, None] * flux[:, :, None, None])
    images = images + SKY_SIGMA[None, :, None, None] * randn(n, 5, size, size)
    observed = mags + MAG_ERROR[None] * randn(n, 5)
    return Partition(images.float().contiguous(), observed.float(), z.float())


def generate_partition(n_samples: int, seed: int, index: int) -> Partition:
    """Partition ``index`` of the dataset for ``seed`` (independent of the others)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    chunks = [render_galaxies(min(_CHUNK, n_samples - start), generator) for start in range(0, n_samples, _CHUNK)]
    return Partition(*(torch.cat([getattr(c, f) for c in chunks]) for f in ("images", "magnitudes", "redshifts")))


def write_partition(n_samples: int, seed: int, index: int, path: Path) -> Path:
    """Write partition ``index`` to ``path`` with memory bounded by one chunk, whatever its size.

    The images are rendered chunk by chunk into a file-backed tensor (an mmap of
    a temporary file beside ``path``), so a multi-GB partition costs page cache,
    not resident memory; the bytes equal ``save_partition(generate_partition(...))``.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}-images-") as backing:
        images = torch.from_file(backing.name, shared=True, size=n_samples * math.prod(IMAGE_SHAPE),
                                 dtype=torch.float32).view(n_samples, *IMAGE_SHAPE)
        magnitudes = torch.empty(n_samples, IMAGE_SHAPE[0])
        redshifts = torch.empty(n_samples)
        for start in range(0, n_samples, _CHUNK):
            chunk = render_galaxies(min(_CHUNK, n_samples - start), generator)
            stop = start + chunk.redshifts.numel()
            images[start:stop] = chunk.images
            magnitudes[start:stop] = chunk.magnitudes
            redshifts[start:stop] = chunk.redshifts
        partial = path.with_name(f".{path.name}.partial")
        save_partition(Partition(images, magnitudes, redshifts), partial)
        partial.replace(path)  # never leave a truncated partition under the final name
    return path


def generate_partitions(data_size_bytes: int, partition_size_bytes: int, seed: int = 0,
                        out_dir: Path | str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> list[Path] | list[Partition]:
    """Generate a dataset of about ``data_size_bytes`` in partitions of about ``partition_size_bytes``.

    With ``out_dir``, writes ``part-00000.pt`` ... there (streaming, bounded
    memory) and returns the paths; without, returns the partitions in memory.
    ``progress(done, total)`` is called after each partition.
    """
    plan = partition_plan(data_size_bytes, partition_size_bytes)
    results: list = []
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for index, n in enumerate(plan):
        if out_dir is None:
            results.append(generate_partition(n, seed, index))
        else:
            results.append(write_partition(n, seed, index, Path(out_dir) / f"part-{index:05d}.pt"))
        if progress:
            progress(index + 1, len(plan))
    return results
