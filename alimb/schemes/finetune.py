"""FT and FT-th (paper §III, §V-A): the backbone fine-tuned from its pretrained weights at every
iteration, through a LightningModule and the Lightning Trainer.

Data path: images stay uint8 in memory and are batched by index (no loader workers to restart
between the many short epochs); resizing, random crop and flip, and normalisation run on the
device; channels_last on GPU; training and scoring in the trainer's precision (autocast for bf16/16).
FT-th divides the predicted probabilities by the labeled class priors and renormalises (thresholding,
Buda et al.).
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from typing import Annotated, Any, Literal, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from lightning.pytorch.callbacks import TQDMProgressBar

from alimb.backbone import IMAGENET_MEAN, IMAGENET_STD
from alimb.options import Count, Doc, NonNegativeNumber, Number, Positive, PositiveNumber
from alimb.schemes import Inputs

log = logging.getLogger(__name__)
for _name in ("lightning.pytorch", "lightning.fabric"):  # their banners (GPU/TPU, tips, "fit stopped") at every fit
    logging.getLogger(_name).setLevel(logging.WARNING)


class _IterationBar(TQDMProgressBar):
    """Lightning's epoch bar, saying which AL iteration (by its labeled count) the fine tuning belongs to."""

    def __init__(self, n_labeled: int):
        super().__init__(leave=False)
        self.n_labeled = n_labeled

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"fine-tuning on {self.n_labeled} labels, epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


def threshold(probs: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """p(c|x) / prior(c), renormalised; prior = labeled share of c; classes with no labeled sample get 0."""
    counts = np.asarray(class_counts, dtype=np.float64)
    prior = counts / counts.sum()
    scaled = np.where(counts > 0, probs / np.where(counts > 0, prior, 1.0), 0.0)
    total = scaled.sum(axis=1, keepdims=True)
    # a row whose mass is all on unlabeled classes (underflow) keeps its plain probabilities
    return np.where(total > 0, scaled / np.where(total > 0, total, 1.0), probs)


class _Batches(torch.utils.data.Dataset):
    """Batches by a list of indices: one fancy-indexing per batch, not one call per image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(idx)
        return self.images[idx], self.labels[idx]


class _EpochBatches(torch.utils.data.Sampler):
    """Each epoch a seeded permutation of the labeled set cut into batches (a last batch of one sample is dropped:
    BatchNorm needs two), as BatchSampler over RandomSampler cuts it. When several ranks train (ddp_spawn/ddp_fork),
    every rank draws the same permutation and takes every world-th sample of it, the same count on each, so
    the ranks take the same number of steps; Lightning's own DistributedSampler is not used (it would sample single
    images from a dataset that serves batches)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.generator = n, batch_size, torch.Generator().manual_seed(seed)

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator)
        torch.randperm(self.n, generator=self.generator)  # RandomSampler drew (and dropped) a second one per epoch:
        # drawn here too, every run's batches are the ones it had before this sampler replaced it
        rank, world = self._rank_and_world()
        if world > 1:
            order = order[: self.n // world * world][rank::world]
        batches = list(order.split(self.batch_size))
        if batches and len(batches[-1]) == 1:
            batches.pop()
        return iter(batches)

    def __getstate__(self) -> dict:  # ddp_spawn pickles it; torch 2.13 cannot send a Generator to a spawned process
        return {**self.__dict__, "generator": self.generator.get_state().numpy()}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.generator = torch.Generator()
        self.generator.set_state(torch.from_numpy(state["generator"]))

    def __len__(self) -> int:
        n = self.n // self._rank_and_world()[1]
        return n // self.batch_size + (n % self.batch_size > 1)


class FineTuneModule(L.LightningModule):
    """Pretrained body + new linear head, trained with SGD and ReduceLROnPlateau on the training loss (the paper),
    or AdamW with a linear warm-up and a cosine decay over the epochs (ViTs)."""

    def __init__(self, body: torch.nn.Module, feature_dim: int, n_classes: int, image_size: int, lr: float,
                 momentum: float, weight_decay: float, plateau_patience: int, plateau_factor: float, augment: bool,
                 seed: int, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD, optimizer: str = "sgd",
                 schedule: str = "plateau", warmup_epochs: int = 0, epochs: int = 1):
        super().__init__()
        self.body, self.head = body, torch.nn.Linear(feature_dim, n_classes)
        self.image_size, self.augment, self.seed = image_size, augment, seed
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.plateau_patience, self.plateau_factor = plateau_patience, plateau_factor
        self.optimizer, self.schedule, self.warmup_epochs, self.epochs = optimizer, schedule, warmup_epochs, epochs
        self.register_buffer("mean", torch.tensor(mean)[None, :, None, None], persistent=False)  # the backbone's
        self.register_buffer("std", torch.tensor(std)[None, :, None, None], persistent=False)
        self._aug_gen: torch.Generator | None = None

    def prepare(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, H, W, 3) on the device -> normalised float (B, 3, S, S), augmented when training."""
        x = images.permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False)
        if train and self.augment:
            x = self._crop_and_flip(x)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop after reflection padding of 1/8 of the size, and a random horizontal flip, per image."""
        if self._aug_gen is None or self._aug_gen.device != x.device:
            self._aug_gen = torch.Generator(device=x.device).manual_seed(self.seed + self.global_rank)
        b, _, s, _ = x.shape
        pad = max(1, s // 8)
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=self._aug_gen, device=x.device)
        ar = torch.arange(s, device=x.device)
        rows = (offsets[:, 0:1] + ar)[:, :, None]  # (b, s, 1)
        cols = (offsets[:, 1:2] + ar)[:, None, :]  # (b, 1, s)
        flip = torch.rand(b, generator=self._aug_gen, device=x.device) < 0.5
        cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
        batch = torch.arange(b, device=x.device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, penultimate features) of prepared images."""
        features = self.body(x).flatten(1)
        return self.head(features), features

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:  # in each rank's process (a spawned one has none of the parent's filters)
            warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")  # ResNet's 1x1 convs

    def training_step(self, batch, _):
        images, labels = batch
        logits, _ = self(self.prepare(images, train=True))
        loss = F.cross_entropy(logits, labels)
        # averaged over the ranks when several train: the plateau rule must see one loss, or their LRs drift apart
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels), sync_dist=True)
        return loss

    def configure_optimizers(self):
        if self.optimizer == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.schedule == "cosine":
            cosine = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(epoch, self.epochs, self.warmup_epochs))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "epoch"}}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.plateau_factor, patience=self.plateau_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "train_loss", "interval": "epoch"}}


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """The cosine schedule's learning-rate factor in epoch `epoch` (0-based): (e+1)/warmup during the warm-up,
    then (1 + cos(pi (e - warmup) / (epochs - warmup))) / 2, from 1 down towards 0 in the last epoch."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / max(1, epochs - warmup)))


# the Lightning precisions that compute in a lower precision, and that precision (the rest compute in float32)
LOW_PRECISION = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "bf16": torch.bfloat16,
                 "16-mixed": torch.float16, "16-true": torch.float16, "16": torch.float16}


# strategies whose ranks are processes that trainer.fit starts and ends: the AL loop stays one process (it alone
# selects, writes and holds the run directory's lock) and gets rank 0's weights and metrics back
IN_FIT_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def several_devices(devices) -> bool:
    return (isinstance(devices, int) and devices not in (0, 1)) or (isinstance(devices, (list, tuple)) and len(devices) > 1) \
        or (isinstance(devices, str) and devices not in ("auto", "1"))


def lightning_kwargs(trainer: dict) -> dict:
    """The Trainer settings as Lightning gets them. On several devices `ddp` (and `auto`, which Lightning makes ddp)
    runs as `ddp_spawn` on GPUs and `ddp_fork` on CPUs: Lightning's ddp re-runs the whole command per rank, each rank
    a second AL loop that would select, write and take the run directory's lock; these ranks exist only inside
    trainer.fit. CPU ranks are forked: a spawned one starts a new interpreter (~5 s a fit) from whatever the main
    module is (under submitit, not alimb, so torchvision's CPU fix would not run before Lightning imports it);
    CUDA cannot be forked once initialised, so GPU ranks are spawned."""
    kwargs = dict(trainer)
    if several_devices(kwargs.get("devices", 1)) and kwargs.get("strategy", "auto") in ("auto", "ddp"):
        accelerator = kwargs.get("accelerator", "auto")
        cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
        kwargs["strategy"] = "ddp_spawn" if cuda else "ddp_fork"
    if several_devices(kwargs.get("devices", 1)) and kwargs.get("strategy") in IN_FIT_STRATEGIES:
        from lightning.fabric.plugins.environments import LightningEnvironment

        # the ranks are this fit's own processes on this node, whatever launched alimb: inside a Slurm job Lightning
        # would take the job's one task for every rank (each rank 0, both listening on the job's port)
        kwargs["plugins"] = [LightningEnvironment()]
    return kwargs


def inference_setup(trainer: dict) -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None) for scoring, as the trainer trains: its accelerator and its precision."""
    accelerator = str(trainer.get("accelerator", "auto"))
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    device = torch.device("cuda" if cuda else "cpu")
    return device, LOW_PRECISION.get(str(trainer.get("precision", "32-true")))


class FineTuneScheme:
    """FT (`thresholding: false`) or FT-th: re-initialised from M_g's weights and fine-tuned every iteration."""

    needs_images = True

    def __init__(
        self,
        backbone: Annotated[Any, Doc("M_g, the pretrained model fine-tuned (conf: the run's backbone)")],
        thresholding: Annotated[bool, Doc("divide the probabilities by the labeled class priors at inference "
                                          "(FT-th)")] = False,
        epochs: Annotated[Positive, Doc("per iteration (paper: 60)")] = 60,
        lr: Annotated[PositiveNumber, Doc("the initial learning rate (paper: 0.01)")] = 0.01,
        momentum: Annotated[NonNegativeNumber, Doc("SGD's (not in the paper; the usual value for SGD fine "
                                                   "tuning)")] = 0.9,
        weight_decay: Annotated[NonNegativeNumber, Doc("not in the paper; the usual value for ResNets")] = 5e-4,
        batch_size: Annotated[int, Field(ge=2), Doc("paper: 32 (BatchNorm needs two samples)")] = 32,
        plateau_patience: Annotated[Count, Doc("epochs of no training-loss improvement before the LR drops "
                                               "(paper: 10)")] = 10,
        plateau_factor: Annotated[Number, Field(gt=0, le=1), Doc("the LR's factor on a plateau (paper: 0.1)")] = 0.1,
        image_size: Annotated[Optional[Annotated[int, Field(ge=8)]], Doc(
            "input size; null: the backbone's resolution")] = None,
        augment: Annotated[bool, Doc("random crop (reflection padding) and horizontal flip, on the device")] = True,
        inference_batch_size: Annotated[Positive, Doc("images per batch when scoring the pool")] = 256,
        trainer: Annotated[Optional[dict], Doc("Lightning Trainer settings (conf: the run's trainer)")] = None,
        optimizer: Annotated[Literal["sgd", "adamw"], Doc(
            "sgd (paper); adamw: decoupled weight decay, for ViTs (scheme=ft_vit)")] = "sgd",
        schedule: Annotated[Literal["plateau", "cosine"], Doc(
            "plateau: the paper's (the LR times plateau_factor after plateau_patience epochs without progress); "
            "cosine: linear warm-up over warmup_epochs, then cosine decay")] = "plateau",
        warmup_epochs: Annotated[Count, Doc("linear warm-up epochs of the cosine schedule")] = 0,
    ):
        self.optimizer, self.schedule, self.warmup_epochs = optimizer, schedule, warmup_epochs
        self.backbone, self.thresholding, self.epochs, self.lr = backbone, thresholding, epochs, lr
        self.momentum, self.weight_decay, self.batch_size = momentum, weight_decay, batch_size
        self.plateau_patience, self.plateau_factor, self.augment = plateau_patience, plateau_factor, augment
        self.image_size = int(image_size or backbone.resolution)
        self.inference_batch_size, self.trainer_kwargs = inference_batch_size, dict(trainer or {})
        self.module: FineTuneModule | None = None
        self.class_counts: np.ndarray | None = None

    def _new_module(self, n_classes: int, seed: int) -> FineTuneModule:
        """From the pretrained weights (not the previous iteration's), the new head seeded."""
        body = self.backbone.build().cpu().train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return FineTuneModule(
                body, self.backbone.feature_dim, n_classes, self.image_size, self.lr, self.momentum, self.weight_decay,
                self.plateau_patience, self.plateau_factor, self.augment, seed, self.backbone.mean, self.backbone.std,
                self.optimizer, self.schedule, self.warmup_epochs, self.epochs,
            )

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> dict:
        seed = int(rng.integers(2**31))
        self.class_counts = np.bincount(y, minlength=n_classes)
        self.module = self._new_module(n_classes, seed)
        images, labels = torch.from_numpy(np.ascontiguousarray(inputs.images)), torch.from_numpy(np.asarray(y))
        loader = torch.utils.data.DataLoader(_Batches(images, labels), sampler=_EpochBatches(len(labels), self.batch_size, seed),
                                             batch_size=None, pin_memory=torch.cuda.is_available())
        show = bool(self.trainer_kwargs.get("enable_progress_bar", True)) and sys.stdout.isatty()  # logs: no bars
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")  # in-memory batches need none
            warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)")  # inside lightning 2.6 itself
            # where Slurm is installed (a login node, a job): a run is one process on one device, never srun's tasks
            warnings.filterwarnings("ignore", ".*`srun` command is available on your system but is not used.*")
            trainer = L.Trainer(
                max_epochs=self.epochs, logger=False, enable_checkpointing=False, enable_model_summary=False,
                use_distributed_sampler=False,  # _EpochBatches shards the batches itself
                callbacks=[_IterationBar(len(y))] if show else [],
                **{**lightning_kwargs(self.trainer_kwargs), "enable_progress_bar": show},
            )
            try:
                trainer.fit(self.module, loader)
            except SystemExit:  # Lightning turns Ctrl-C into exit(1) after its own clean-up: report it as Ctrl-C
                if trainer.interrupted:
                    raise KeyboardInterrupt from None
                raise
        loss = {"train_loss": float(trainer.callback_metrics.get("train_loss", float("nan")))}  # rank 0's, ranks averaged
        return {**loss, "train_info": {"processes": trainer.world_size}} if trainer.world_size > 1 else loss

    @torch.inference_mode()
    def _outputs(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, penultimate features) in one pass, thresholded for FT-th."""
        module = self.module
        device, dtype = inference_setup(self.trainer_kwargs)
        module.to(device).eval()
        probs, feats = [], []
        autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
        for start in range(0, len(inputs), self.inference_batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(inputs.images[start:start + self.inference_batch_size]))
            with autocast:
                logits, features = module(module.prepare(batch.to(device), train=False))
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            feats.append(features.float().cpu().numpy())
        p = np.concatenate(probs).astype(np.float64)
        if self.thresholding:
            p = threshold(p, self.class_counts)
        return p, np.concatenate(feats)

    def score(self, inputs: Inputs) -> tuple[np.ndarray, np.ndarray]:
        return self._outputs(inputs)

    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """(W (d, K), b (K,)) of the classification head over the penultimate features."""
        linear = self.module.head
        return linear.weight.detach().float().cpu().numpy().T.copy(), linear.bias.detach().float().cpu().numpy()

    def predict(self, inputs: Inputs) -> np.ndarray:
        return self._outputs(inputs)[0].argmax(axis=1)

    def state_dict(self) -> dict[str, np.ndarray]:
        if self.module is None:
            return {}
        state = {f"model/{k}": v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        return {**state, "class_counts": self.class_counts, "seed": np.array(self.module.seed)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        if not state:
            return
        self.class_counts = state["class_counts"]
        self.module = self._new_module(len(self.class_counts), int(state["seed"]))
        weights = {k.split("/", 1)[1]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("model/")}
        self.module.load_state_dict(weights)
