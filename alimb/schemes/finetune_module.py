"""The LightningModule of the fine-tuning schemes: a pretrained body and a new linear head, trained on uint8
images batched by index in memory (no loader workers to restart between the many short epochs), resized, cropped,
flipped and normalised on the device."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import TQDMProgressBar


@dataclass(frozen=True)
class Recipe:
    """How the module is trained: the fine-tuning scheme's options (alimb.schemes.finetune), passed on whole."""

    image_size: int
    lr: float
    momentum: float
    weight_decay: float
    plateau_patience: int
    plateau_factor: float
    augment: bool
    optimizer: str = "sgd"
    schedule: str = "plateau"
    warmup_epochs: int = 0
    epochs: int = 1


class _IterationBar(TQDMProgressBar):
    """Lightning's epoch bar, saying which AL iteration (by its labeled count) the fine tuning belongs to."""

    def __init__(self, n_labeled: int):
        super().__init__(leave=False)
        self.n_labeled = n_labeled

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"fine-tuning on {self.n_labeled} labels, epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


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

    def __init__(self, body: torch.nn.Module, feature_dim: int, n_classes: int, *, recipe: Recipe, seed: int,
                 mean: tuple, std: tuple):
        super().__init__()
        self.body, self.head = body, torch.nn.Linear(feature_dim, n_classes)
        self.recipe, self.seed = recipe, seed
        self.register_buffer("mean", torch.tensor(mean)[None, :, None, None], persistent=False)  # the backbone's
        self.register_buffer("std", torch.tensor(std)[None, :, None, None], persistent=False)
        self._aug_gen: torch.Generator | None = None

    def prepare(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, H, W, 3) on the device -> normalised float (B, 3, S, S), augmented when training."""
        x = images.permute(0, 3, 1, 2).float().div_(255)
        size = self.recipe.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if train and self.recipe.augment:
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
        r = self.recipe
        if r.optimizer == "adamw":
            opt = torch.optim.AdamW(self.parameters(), lr=r.lr, weight_decay=r.weight_decay)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
        if r.schedule == "cosine":
            cosine = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(epoch, r.epochs, r.warmup_epochs))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "epoch"}}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=r.plateau_factor,
                                                             patience=r.plateau_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "train_loss", "interval": "epoch"}}


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """The cosine schedule's learning-rate factor in epoch `epoch` (0-based): (e+1)/warmup during the warm-up,
    then (1 + cos(pi (e - warmup) / (epochs - warmup))) / 2, from 1 down towards 0 in the last epoch."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / max(1, epochs - warmup)))
