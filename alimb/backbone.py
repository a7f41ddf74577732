"""Feature extractors M_g: a torchvision model pretrained on ImageNet (penultimate layer), or raw pixels."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from alimb.devices import resolve_device
from alimb.errors import UserError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionBackbone:
    """A torchvision classifier without its last layer; images resized to `resolution`, ImageNet-normalised."""

    def __init__(
        self, arch: str = "resnet18", weights: str | None = "IMAGENET1K_V1", weights_path: str | None = None,
        resolution: int = 224, batch_size: int = 128, num_workers: int = 2, device: str = "auto", init_seed: int = 0,
    ):
        self.arch, self.weights, self.weights_path, self.resolution = arch, weights, weights_path, int(resolution)
        self.init_seed = init_seed
        self.batch_size, self.num_workers, self.device = batch_size, num_workers, resolve_device(device)

    @property
    def cache_name(self) -> str:
        """Names the features in the cache: architecture, weights and resolution."""
        source = self.weights or f"random{self.init_seed}"
        if self.weights_path:
            source = "file" + hashlib.sha1(Path(self.weights_path).expanduser().read_bytes()).hexdigest()[:10]
        return f"{self.arch}-{source}-{self.resolution}"

    def build(self) -> torch.nn.Module:
        """The network with its classification layer replaced by the identity, in eval mode on the device."""
        import torchvision

        with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the global RNG as it was
            torch.manual_seed(self.init_seed)
            model = torchvision.models.get_model(self.arch, weights=None)
        if self.weights_path:
            path = Path(self.weights_path).expanduser()
            if not path.is_file():
                raise UserError(f"backbone weights not found: {path}; set backbone.weights_path to a .pth state dict")
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif self.weights:
            weights = torchvision.models.get_model_weights(self.arch)[self.weights]
            try:
                model.load_state_dict(weights.get_state_dict(progress=True))
            except (OSError, RuntimeError) as err:  # URLError is an OSError
                raise UserError(
                    f"cannot download {self.arch} {self.weights} weights ({str(err).splitlines()[0]}); fetch "
                    f"{weights.url} elsewhere and set backbone.weights_path=/path/to/{weights.url.rsplit('/', 1)[-1]}"
                ) from None
        self.feature_dim = _drop_classifier(model)
        model.eval().to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, res, res) on the device."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=self.device)[:, None, None]
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x


def _drop_classifier(model: torch.nn.Module) -> int:
    """Replace the classification layer by the identity; returns the feature dimension it took."""
    for name in ("fc", "classifier", "head", "heads"):
        layer = getattr(model, name, None)
        if isinstance(layer, torch.nn.Linear):
            setattr(model, name, torch.nn.Identity())
            return layer.in_features
    raise UserError(f"don't know the classification layer of {type(model).__name__}; use a ResNet-like backbone")


class Pixels:
    """Raw pixels as features (flattened, scaled to [0, 1]) at `resolution`; for small images."""

    def __init__(self, resolution: int = 32, batch_size: int = 1024, num_workers: int = 0, device: str = "cpu"):
        self.resolution, self.batch_size, self.num_workers = int(resolution), batch_size, num_workers
        self.device = resolve_device(device)

    @property
    def cache_name(self) -> str:
        return f"pixels-{self.resolution}"

    def build(self) -> torch.nn.Module:
        return torch.nn.Flatten()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device).permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False)
        return x
