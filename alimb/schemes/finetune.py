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
import sys
import warnings
from typing import Annotated, Literal, Optional

import lightning as L
import numpy as np
import torch
from pydantic import Field

from alimb.backbone import Backbone
from alimb.options import Count, Doc, ImageSize, NonNegativeNumber, Number, Part, Positive, PositiveNumber
from alimb.schemes import Inputs
from alimb.schemes.finetune_module import FineTuneModule, Recipe, _Batches, _EpochBatches, _IterationBar
from alimb.schemes.trainer import Trainer, check as check_trainer, inference_setup, lightning_kwargs, settings

log = logging.getLogger(__name__)
for _name in ("lightning.pytorch", "lightning.fabric"):  # their banners (GPU/TPU, tips, "fit stopped") at every fit
    logging.getLogger(_name).setLevel(logging.WARNING)


def threshold(probs: np.ndarray, class_counts: np.ndarray) -> np.ndarray:
    """p(c|x) / prior(c), renormalised; prior = labeled share of c; classes with no labeled sample get 0."""
    counts = np.asarray(class_counts, dtype=np.float64)
    prior = counts / counts.sum()
    scaled = np.where(counts > 0, probs / np.where(counts > 0, prior, 1.0), 0.0)
    total = scaled.sum(axis=1, keepdims=True)
    # a row whose mass is all on unlabeled classes (underflow) keeps its plain probabilities
    return np.where(total > 0, scaled / np.where(total > 0, total, 1.0), probs)


class FineTuneScheme:
    """FT (`thresholding: false`) or FT-th: re-initialised from M_g's weights and fine-tuned every iteration."""

    needs_images = True

    @staticmethod
    def check(options: dict) -> None:
        """Refuse trainer settings this machine or Lightning cannot give, before any model is built."""
        check_trainer(options.get("trainer"))

    def __init__(
        self,
        backbone: Annotated[Backbone, Part("backbone"), Doc(
            "M_g, the pretrained model fine-tuned (conf: the run's backbone)")],
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
        image_size: ImageSize = None,
        augment: Annotated[bool, Doc("random crop (reflection padding) and horizontal flip, on the device")] = True,
        inference_batch_size: Annotated[Positive, Doc("images per batch when scoring the pool")] = 256,
        trainer: Annotated[Optional[Trainer], Doc("Lightning Trainer settings (conf: the run's trainer)")] = None,
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
        self.inference_batch_size, self.trainer = inference_batch_size, settings(trainer)
        self.module: FineTuneModule | None = None
        self.class_counts: np.ndarray | None = None

    def _new_module(self, n_classes: int, seed: int) -> FineTuneModule:
        """From the pretrained weights (not the previous iteration's), the new head seeded."""
        body = self.backbone.build().cpu().train()
        recipe = Recipe(image_size=self.image_size, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                        plateau_patience=self.plateau_patience, plateau_factor=self.plateau_factor, augment=self.augment,
                        optimizer=self.optimizer, schedule=self.schedule, warmup_epochs=self.warmup_epochs,
                        epochs=self.epochs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return FineTuneModule(body, self.backbone.feature_dim, n_classes, recipe=recipe, seed=seed,
                                  mean=self.backbone.mean, std=self.backbone.std)

    def fit(self, inputs: Inputs, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> dict:
        seed = int(rng.integers(2**31))
        self.class_counts = np.bincount(y, minlength=n_classes)
        self.module = self._new_module(n_classes, seed)
        images, labels = torch.from_numpy(np.ascontiguousarray(inputs.images)), torch.from_numpy(np.asarray(y))
        loader = torch.utils.data.DataLoader(_Batches(images, labels), sampler=_EpochBatches(len(labels), self.batch_size, seed),
                                             batch_size=None, pin_memory=torch.cuda.is_available())
        show = self.trainer.enable_progress_bar and sys.stdout.isatty()  # logs: no bars
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")  # in-memory batches need none
            warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)")  # inside lightning 2.6 itself
            # where Slurm is installed (a login node, a job): a run is one process on one device, never srun's tasks
            warnings.filterwarnings("ignore", ".*`srun` command is available on your system but is not used.*")
            trainer = L.Trainer(
                max_epochs=self.epochs, logger=False, enable_checkpointing=False, enable_model_summary=False,
                use_distributed_sampler=False,  # _EpochBatches shards the batches itself
                callbacks=[_IterationBar(len(y))] if show else [],
                **{**lightning_kwargs(self.trainer), "enable_progress_bar": show},
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
        device, dtype = inference_setup(self.trainer)
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
