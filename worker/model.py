"""The redshift regressor: the shape of the CosmicAI (AstroMAE) inference model.

Input: 5-band (u, g, r, i, z) galaxy images ``[B, 5, 64, 64]``, centre-cropped
to 32x32 inside the model, and the 5 magnitudes ``[B, 5]``. Two image branches
run side by side — a small ViT-style encoder (patch embedding, transformer
blocks, mean pooling) and an Inception-style convolution block (parallel
1x1 / 3x3 / 5x5 / pooling paths) — and their features are concatenated with
an embedding of the magnitudes and mapped by an MLP head to one redshift.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

BANDS = 5
IMAGE_SIZE = 64
CROP_SIZE = 32


class ModelLoadError(ValueError):
    """A state dict that does not fit this model (or is not a state dict)."""


def centre_crop(images: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """The central ``size`` x ``size`` pixels of ``[B, C, H, W]`` images."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


class ViTEncoder(nn.Module):
    """Patch embedding + pre-norm transformer blocks + mean pooling."""

    def __init__(self, patch: int = 4, dim: int = 64, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        n_patches = (CROP_SIZE // patch) ** 2
        self.embed = nn.Conv2d(BANDS, dim, kernel_size=patch, stride=patch)
        self.position = nn.Parameter(0.02 * torch.randn(1, n_patches, dim))  # ViT-style small random init
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return self.norm(self.blocks(tokens)).mean(dim=1)


class InceptionBlock(nn.Module):
    """Parallel 1x1, 3x3, 5x5 and pooling paths, concatenated, globally pooled."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(BANDS, 2 * width, 3, padding=1), nn.ReLU())
        c = 2 * width
        self.b1 = nn.Conv2d(c, width, 1)
        self.b3 = nn.Sequential(nn.Conv2d(c, width, 1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(c, width, 1), nn.ReLU(), nn.Conv2d(width, width, 5, padding=2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(c, width, 1))
        self.out_features = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)
        return torch.relu(y).mean(dim=(2, 3))


class RedshiftRegressor(nn.Module):
    """ViT branch + Inception branch + magnitudes -> MLP -> redshift."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = ViTEncoder()
        self.inception = InceptionBlock()
        self.magnitudes = nn.Sequential(nn.Linear(BANDS, 16), nn.ReLU())
        width = self.vit.out_features + self.inception.out_features + 16
        self.head = nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, images: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
        """Predicted redshift ``[B]`` for raw ``[B, 5, 64, 64]`` images and ``[B, 5]`` magnitudes."""
        x = centre_crop(images)
        # Per-image scaling keeps the network's input range stable across bands and brightness.
        x = x / (x.abs().amax(dim=(1, 2, 3), keepdim=True) + 1e-6)
        mags = (magnitudes - 20.0) / 5.0
        features = torch.cat([self.vit(x), self.inception(x), self.magnitudes(mags)], dim=1)
        return self.head(features).squeeze(1)


def build_model(seed: int = 0) -> RedshiftRegressor:
    """A model with deterministic initial weights for ``seed``, in eval mode.

    The global RNG is seeded only while the layers are built and then restored,
    so building a model never changes the caller's random stream.
    """
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = RedshiftRegressor()
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's RNG as it was
    return model.eval()


def _state_dict(loaded: object) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded file: bare, under ``state_dict``/``model``, or from DataParallel."""
    if isinstance(loaded, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(loaded.get(wrapper), dict):
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"model weights hold a {type(loaded).__name__}, expected a state dict")
    if loaded and all(isinstance(k, str) and k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}  # saved from DataParallel
    return loaded


def load_model(weights: bytes | str | Path | None = None, seed: int = 0) -> RedshiftRegressor:
    """The model with weights from a ``.pt`` state dict (path or bytes), or seeded ones when None.

    Raises:
        ModelLoadError: the file is not a state dict of this model (the message
            names the missing/unexpected keys or mismatched shapes).
    """
    model = build_model(seed)
    if weights is None:
        return model
    source = io.BytesIO(weights) if isinstance(weights, (bytes, bytearray)) else weights
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ModelLoadError(f"model weights are not a readable torch state dict ({type(exc).__name__}: "
                             f"{first_line}); save model.state_dict(), not the pickled model") from exc
    try:
        model.load_state_dict(_state_dict(loaded))
    except RuntimeError as exc:
        raise ModelLoadError(f"model weights do not match RedshiftRegressor: {exc}") from exc
    return model.eval()
