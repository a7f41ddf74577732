"""Feature extractors M_g: a torchvision model pretrained on ImageNet (penultimate layer), a timm model (DINOv2,
CLIP, ResNet-50: its pooled embedding), or raw pixels. Each keeps the `Backbone` protocol; a class may also declare
`check(options)`, which validation calls before any work (names known to the library, a weights file that loads)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import struct
import zipfile
from pathlib import Path
from typing import Annotated, Optional, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field

from alimb.devices import resolve_device
from alimb.errors import UserError
from alimb.options import PRESENTATION, Count, Device, Doc, Positive


@runtime_checkable
class Backbone(Protocol):
    """What feature extraction (alimb.features) and fine tuning ask of M_g."""

    resolution: int  # images are resized to this
    batch_size: int  # images per batch when extracting features
    num_workers: int  # decoding processes
    device: torch.device
    mean: tuple  # the normalisation fine tuning applies (the weights' own)
    std: tuple

    @property
    def cache_name(self) -> str:
        """Names the features in the cache: model, weights (a file by its content) and resolution."""

    def build(self) -> torch.nn.Module:
        """The model, its classifier dropped, in eval mode on `device`; sets `feature_dim`."""

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> (B, 3, resolution, resolution) as the model takes it, on `device`."""


def check_weights_file(path: str | None) -> None:
    """Refuse, in one line naming the file, a weights file that cannot be a state dict: not a zip archive (torch's
    .pth) nor a safetensors file with a readable header, or one cut short. Reads the header only."""
    if path is None:
        return
    file = Path(path).expanduser()
    fix = "download it again, or set backbone.weights_path to the right file"
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            if head.startswith(b"PK"):  # torch's zip format: every member's checksum (a cut-short file fails here)
                with zipfile.ZipFile(file) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    raise ValueError(f"member {bad} is damaged")
                return
            if head[:1] == b"\x80":  # torch's legacy pickle format: nothing to check without loading it
                return
            if len(head) == 8:
                (length,) = struct.unpack("<Q", head)
                if 0 < length <= size - 8:
                    header = json.loads(f.read(length))
                    if not isinstance(header, dict):
                        raise ValueError("its header is not a table of tensors")
                    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                    if 8 + length + end > size:
                        raise ValueError(f"it holds {size} bytes, its header promises {8 + length + end}")
                    return
                if length > size - 8 and length < 1 << 32:
                    raise ValueError(f"it holds {size} bytes, its header alone promises {length + 8}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, zipfile.BadZipFile,
            UnicodeDecodeError) as err:
        raise UserError(f"backbone weights {file} cannot be read ({str(err).splitlines()[0] or type(err).__name__}); "
                        f"{fix}") from None
    raise UserError(f"backbone weights {file} are neither a PyTorch state dict (.pth) nor a safetensors file; {fix}")


def _loading(what: str, path: Path):
    """Turns an error loading weights (a wrong architecture's file, a damaged one) into one line naming the file."""

    @contextlib.contextmanager
    def guard():
        import warnings

        missing: list[str] = []

        class Missing(logging.Handler):  # timm loads a file leniently and logs the keys it lacked
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("Missing keys"):
                    missing.append(record.getMessage())

        handler, timm_log = Missing(logging.INFO), logging.getLogger("timm")
        level = timm_log.level
        timm_log.addHandler(handler)
        timm_log.setLevel(logging.INFO)  # timm says what the file lacked at INFO when it drops the classifier
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's and timm's warnings about the file: the line below says it
                yield
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - torch.load, safetensors and timm raise many kinds for a bad file
            reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise UserError(f"backbone weights {path} do not load into {what} ({reason}); set backbone.weights_path "
                            "to that model's weights file") from None
        finally:
            timm_log.removeHandler(handler)
            timm_log.setLevel(level)
        if missing:
            raise UserError(f"backbone weights {path} do not load into {what} ({missing[0].splitlines()[0][:160]}); "
                            "set backbone.weights_path to that model's weights file")

    return guard()


def _a_file(value: str | None) -> str | None:
    if value is not None and not Path(value).expanduser().is_file():
        raise ValueError(f"no such file: {Path(value).expanduser()} (the backbone's weights: a .pth state dict "
                         "for torchvision, e.g. model.safetensors for timm)")
    return value


# what every pretrained backbone takes
WeightsPath = Annotated[Optional[str], AfterValidator(_a_file), Doc(
    "a local file of the weights, for offline machines (overrides the download)")]
Resolution = Annotated[int, Field(ge=8), Doc("images are resized to this (the resolution the weights expect)")]
BatchSize = Annotated[Positive, Doc("images per batch when extracting features")]
NumWorkers = Annotated[Count, PRESENTATION, Doc("image decoding processes")]
InitSeed = Annotated[Count, Doc("the initialisation when weights is null")]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionBackbone:
    """A torchvision classifier without its last layer; images resized to `resolution`, ImageNet-normalised."""

    @staticmethod
    def check(options: dict) -> None:
        """A model and weights name torchvision knows (offline), and a weights file that can be read."""
        import torchvision

        arch, weights = options["arch"], options["weights"]
        if arch not in torchvision.models.list_models():
            raise UserError(f"config key backbone.arch={arch!r} is invalid: not a torchvision model (e.g. resnet18, "
                            "resnet50)")
        if weights is not None:
            known = list(torchvision.models.get_model_weights(arch).__members__)
            if weights not in known:
                raise UserError(f"config key backbone.weights={weights!r} is invalid: {arch} has {', '.join(known)} "
                                "(or null)")
        check_weights_file(options.get("weights_path"))

    def __init__(
        self,
        arch: Annotated[str, Doc("torchvision's model name")] = "resnet18",
        weights: Annotated[Optional[str], Doc("torchvision's weights name; null: random initialisation "
                                              "(tests)")] = "IMAGENET1K_V1",
        weights_path: WeightsPath = None,
        resolution: Resolution = 224,
        batch_size: BatchSize = 128,
        num_workers: NumWorkers = 2,
        device: Device = "auto",
        init_seed: InitSeed = 0,
    ):
        self.arch, self.weights, self.weights_path, self.resolution = arch, weights, weights_path, int(resolution)
        self.init_seed = init_seed
        self.batch_size, self.num_workers, self.device = batch_size, num_workers, resolve_device(device)

    @property
    def cache_name(self) -> str:
        """Names the features in the cache: architecture, weights and resolution."""
        source = _file_identity(self.weights_path) if self.weights_path else (self.weights or f"random{self.init_seed}")
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
            with _loading(self.arch, path):
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

    mean, std, interpolation = IMAGENET_MEAN, IMAGENET_STD, "bilinear"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, res, res) on the device."""
        return to_input(images, self.device, self.resolution, self.mean, self.std, self.interpolation)


def to_input(images: torch.Tensor, device: torch.device, resolution: int, mean, std, interpolation: str) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, res, res) on the device, resized (antialiased) and normalised; channels
    last on CUDA."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode=interpolation, antialias=True, align_corners=False)
    x = (x - torch.tensor(mean, device=device)[:, None, None]) / torch.tensor(std, device=device)[:, None, None]
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _file_identity(path: str) -> str:
    """Names a weights file in the feature cache by its content."""
    return "file" + hashlib.sha1(Path(path).expanduser().read_bytes()).hexdigest()[:10]


def _hub_resolves() -> bool:
    """Whether the Hugging Face hub's host name resolves (a machine without a network fails here at once, where the
    hub client would retry for most of a minute)."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    try:
        socket.getaddrinfo(urllib.parse.urlparse(constants.ENDPOINT).hostname, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_cache_only(cache_only: bool):
    """The hub client in offline mode (its cache only) for the block, when `cache_only`."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or cache_only
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


class TimmBackbone:
    """A timm model without its classifier (`num_classes=0`): F_g is its pooled pre-logits embedding, as timm defines
    it per family: the final-norm CLS token for DINOv2; for CLIP the image tower's CLS token after its final norm,
    *before* the projection into the joint image-text space (768-d for ViT-B; the projection only serves text
    matching); global average pooling for ResNet-50 (2048-d). Images are resized to `resolution` with the
    model's interpolation and normalised with its mean and std (timm's pretrained config; CLIP's differ from
    ImageNet's); no centre crop. `weights` is timm's pretrained tag (downloaded from the Hugging Face hub by timm,
    or read from its cache); `weights_path` a local file of those weights (.safetensors or .bin/.pth as the hub
    has it), loaded through timm's own filter (DINOv2's position embeddings resampled to `resolution`)."""

    @staticmethod
    def check(options: dict) -> None:
        """A model and pretrained tag timm knows (offline), and a weights file that can be read."""
        import timm

        model, weights = options["model"], options["weights"]
        if model not in timm.list_models():
            raise UserError(f"config key backbone.model={model!r} is invalid: not a timm model (e.g. "
                            "vit_small_patch14_dinov2)")
        if weights is not None and f"{model}.{weights}" not in timm.list_pretrained(model):
            known = [name.split(".", 1)[1] for name in timm.list_pretrained(model) if "." in name]
            raise UserError(f"config key backbone.weights={weights!r} is invalid: timm has {model} with "
                            f"{', '.join(known) or 'no pretrained weights'} (or null)")
        check_weights_file(options.get("weights_path"))

    def __init__(
        self,
        model: Annotated[str, Doc("timm's model name")],
        weights: Annotated[Optional[str], Doc("timm's pretrained tag; null: random initialisation (tests)")] = None,
        weights_path: WeightsPath = None,
        resolution: Resolution = 224,
        model_kwargs: Annotated[Optional[dict], Doc("timm's create_model arguments (a ViT's img_size)")] = None,
        batch_size: BatchSize = 128,
        num_workers: NumWorkers = 2,
        device: Device = "auto",
        init_seed: InitSeed = 0,
    ):
        self.model, self.weights, self.weights_path, self.resolution = model, weights, weights_path, int(resolution)
        self.model_kwargs, self.init_seed = dict(model_kwargs or {}), init_seed
        self.batch_size, self.num_workers, self.device = batch_size, num_workers, resolve_device(device)
        self.mean, self.std, self.interpolation = self._data_config()

    @property
    def name(self) -> str:
        """timm's name of the model with its weights: `model.tag` (the model alone for random weights)."""
        return f"{self.model}.{self.weights}" if self.weights else self.model

    @property
    def cache_name(self) -> str:
        """Names the features in the cache: model, weights (their file's content, if a file) and resolution."""
        source = _file_identity(self.weights_path) if self.weights_path else (self.weights or f"random{self.init_seed}")
        return f"{self.model}-{source}-{self.resolution}"

    def _data_config(self) -> tuple[tuple, tuple, str]:
        """(mean, std, interpolation) the weights were trained with, from timm's pretrained config (no download)."""
        import timm

        cfg = timm.models.get_pretrained_cfg(self.name if self.weights else self.model)
        if cfg is None:
            return IMAGENET_MEAN, IMAGENET_STD, "bicubic"
        mode = cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic") else "bilinear"
        return tuple(cfg.mean), tuple(cfg.std), mode

    def _weights_help(self) -> str:
        import timm

        cfg = timm.models.get_pretrained_cfg(self.name)
        hub = getattr(cfg, "hf_hub_id", None) or self.name
        return (f"download model.safetensors of https://huggingface.co/{hub} elsewhere and set "
                f"backbone.weights_path=/path/to/model.safetensors")

    def build(self) -> torch.nn.Module:
        """The model with `num_classes=0` (pooled embedding out), in eval mode on the device."""
        import timm

        kwargs = {"num_classes": 0, **self.model_kwargs}
        with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the global RNG as it was
            torch.manual_seed(self.init_seed)
            if self.weights_path:
                path = Path(self.weights_path).expanduser()
                if not path.is_file():
                    raise UserError(f"backbone weights not found: {path}; set backbone.weights_path to the "
                                    f"{self.name} weights file")
                with _loading(self.name, path):
                    model = timm.create_model(self.name, pretrained=True, pretrained_cfg_overlay={"file": str(path)},
                                              **kwargs)
            elif self.weights:
                try:
                    with _hub_cache_only(not _hub_resolves()):
                        model = timm.create_model(self.name, pretrained=True, **kwargs)
                except (OSError, RuntimeError, ValueError) as err:  # the hub unreachable, offline or refusing
                    text = str(err).strip() or type(err).__name__
                    raise UserError(f"cannot download {self.name} weights ({text.split('.')[0][:160]}); "
                                    f"{self._weights_help()}") from None
            else:
                model = timm.create_model(self.model, pretrained=False, **kwargs)
        self.feature_dim = int(model.num_features)
        model.eval().to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, res, res) on the device."""
        return to_input(images, self.device, self.resolution, self.mean, self.std, self.interpolation)


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

    def __init__(
        self,
        resolution: Annotated[int, Field(ge=1), Doc("images are resized to this")] = 32,
        batch_size: BatchSize = 1024,
        num_workers: NumWorkers = 0,
        device: Device = "cpu",
    ):
        self.resolution, self.batch_size, self.num_workers = int(resolution), batch_size, num_workers
        self.device = resolve_device(device)

    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # pixels in [0, 1], as they are

    @property
    def cache_name(self) -> str:
        return f"pixels-{self.resolution}"

    def build(self) -> torch.nn.Module:
        self.feature_dim = 3 * self.resolution * self.resolution
        return torch.nn.Flatten()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device).permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False)
        return x
