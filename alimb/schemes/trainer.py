"""The Lightning Trainer settings of the fine-tuning schemes (`conf/trainer/`): declared once here, checked against
this machine before any work, and turned into the Trainer's arguments and the scoring device and precision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BeforeValidator

from alimb.declarations import Node
from alimb.errors import UserError
from alimb.options import PRESENTATION, Doc

if TYPE_CHECKING:  # torch is imported where it is used: validation reads these settings at every start
    import torch

# the Lightning precisions that compute in a lower precision, and that precision (the rest compute in float32)
LOW_PRECISION = {"bf16-mixed": "bfloat16", "bf16-true": "bfloat16", "bf16": "bfloat16",
                 "16-mixed": "float16", "16-true": "float16", "16": "float16"}
# strategies whose ranks are processes that trainer.fit starts and ends: the AL loop stays one process (it alone
# selects, writes and holds the run directory's lock) and gets rank 0's weights and metrics back
IN_FIT_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def _devices(value: Any) -> Any:
    ok = (isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)) or value == "auto" \
        or (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                      for v in value))
    if not ok:
        raise ValueError("Input should be a positive number of devices, -1 (all), auto, or a list of device indices")
    return value


class Trainer(Node):
    """Lightning Trainer settings for the fine-tuning schemes (conf/trainer/default.yaml)."""

    accelerator: Annotated[Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"], Doc("auto: gpu when present")] = "auto"
    devices: Annotated[Union[int, str, list], BeforeValidator(_devices), Doc(
        "devices per run: several train data-parallel inside each fit (ddp_spawn on GPUs, ddp_fork on "
        "CPUs; the AL loop stays one process)")] = 1
    strategy: Annotated[str, Doc("Lightning's strategy; auto")] = "auto"
    precision: Annotated[Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64",
                                 "16", "bf16"], BeforeValidator(lambda v: str(v) if isinstance(v, int) and not
                                                                isinstance(v, bool) else v),
                         Doc("bf16-mixed on GPUs that support it (H100, A100) and on CPUs")] = "32-true"
    enable_progress_bar: Annotated[bool, PRESENTATION, Doc("Lightning's progress bar while training")] = True
    deterministic: Annotated[bool, Doc("deterministic CUDA kernels (slower); CPU runs are deterministic "
                                       "anyway")] = False


def settings(trainer: dict | Trainer | None) -> Trainer:
    """The settings of a config node (every key it leaves out at its declared default)."""
    if isinstance(trainer, Trainer):
        return trainer
    return Trainer.model_validate({k: v for k, v in (trainer or {}).items() if k not in ("name", "_target_")})


def several_devices(devices: Any) -> bool:
    return (isinstance(devices, int) and devices not in (0, 1)) or (isinstance(devices, (list, tuple)) and len(devices) > 1) \
        or (isinstance(devices, str) and devices not in ("auto", "1"))


def _on_gpu(t: Trainer) -> bool:
    import torch

    return t.accelerator in ("gpu", "cuda") or (t.accelerator == "auto" and torch.cuda.is_available())


def lightning_kwargs(trainer: dict | Trainer) -> dict:
    """The Trainer settings as Lightning gets them. On several devices `ddp` (and `auto`, which Lightning makes ddp)
    runs as `ddp_spawn` on GPUs and `ddp_fork` on CPUs: Lightning's ddp re-runs the whole command per rank, each rank
    a second AL loop that would select, write and take the run directory's lock; these ranks exist only inside
    trainer.fit. CPU ranks are forked: a spawned one starts a new interpreter (~5 s a fit) from whatever the main
    module is (under submitit, not alimb, so torchvision's CPU fix would not run before Lightning imports it);
    CUDA cannot be forked once initialised, so GPU ranks are spawned."""
    t = settings(trainer)
    kwargs = t.model_dump(exclude={"name", "target", "partial"})
    if several_devices(t.devices) and t.strategy in ("auto", "ddp"):
        kwargs["strategy"] = "ddp_spawn" if _on_gpu(t) else "ddp_fork"
    if several_devices(t.devices) and kwargs["strategy"] in IN_FIT_STRATEGIES:
        from lightning.fabric.plugins.environments import LightningEnvironment

        # the ranks are this fit's own processes on this node, whatever launched alimb: inside a Slurm job Lightning
        # would take the job's one task for every rank (each rank 0, both listening on the job's port)
        kwargs["plugins"] = [LightningEnvironment()]
    return kwargs


def inference_setup(trainer: dict | Trainer) -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None) for scoring, as the trainer trains: its accelerator and its precision."""
    import torch

    t = settings(trainer)
    cuda = torch.cuda.is_available() and t.accelerator in ("auto", "gpu", "cuda")
    low = LOW_PRECISION.get(str(t.precision))
    return torch.device("cuda" if cuda else "cpu"), None if low is None else getattr(torch, low)


def check(trainer: dict | Trainer) -> None:
    """Refuse, in one line and before any model is built, what this machine or Lightning cannot give: an absent
    accelerator, more devices than it has (or GPU indices on a machine without GPUs), a strategy whose ranks would
    re-run the whole command, or one Lightning does not know."""
    import torch
    from lightning.pytorch.strategies import StrategyRegistry

    t = settings(trainer)
    available = {"gpu": torch.cuda.is_available(), "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available(), "tpu": False}
    if not available.get(t.accelerator, True):
        raise UserError(f"config key trainer.accelerator={t.accelerator!r} is invalid: no such device here; use auto "
                        "or cpu")
    known = ["auto", *sorted(StrategyRegistry.available_strategies())]
    if t.strategy not in known:
        raise UserError(f"config key trainer.strategy={t.strategy!r} is invalid: Lightning knows "
                        f"{', '.join(known[:8])}, ...")
    if t.strategy.startswith(("fsdp", "deepspeed", "xla")) and not _on_gpu(t):
        raise UserError(f"config key trainer.strategy={t.strategy!r} is invalid: it needs GPUs (or TPUs) and this run "
                        "trains on CPUs; use trainer.strategy=auto, or ddp with trainer.devices=N")
    if not _on_gpu(t) and t.precision in ("16-mixed", "16", "16-true", "bf16-true"):
        raise UserError(f"config key trainer.precision={t.precision!r} is invalid on CPUs (this run trains on CPUs); "
                        "use 32-true or bf16-mixed")
    if _on_gpu(t):
        have, kind = torch.cuda.device_count(), "GPU"
    else:
        import os

        have, kind = os.cpu_count() or 1, "CPU core"
    wanted = t.devices
    if isinstance(wanted, list) and (not _on_gpu(t) or max(wanted) >= have):
        where = f"{have} {kind}s (indices 0..{have - 1})" if _on_gpu(t) else "CPUs as a count, not GPU indices"
        raise UserError(f"config key trainer.devices={wanted} is invalid: this machine has {where}; use "
                        "trainer.devices=N or auto")
    if isinstance(wanted, int) and wanted > have and _on_gpu(t):  # CPU ranks are processes: any number runs
        raise UserError(f"config key trainer.devices={wanted} is invalid: this machine has {have} {kind}s; use at "
                        f"most {have}, or trainer.devices=auto")
    if wanted == -1 and not _on_gpu(t):
        raise UserError("config key trainer.devices=-1 is invalid on CPUs (one process per core would each train a "
                        "copy); use trainer.devices=N with N processes, or 1")
    if several_devices(wanted) and lightning_kwargs(t)["strategy"] not in IN_FIT_STRATEGIES:
        raise UserError(
            f"trainer.devices={wanted} trainer.strategy={t.strategy} is not supported: its ranks re-run the whole "
            "command, each a second AL loop; use trainer.strategy=ddp (run as ddp_spawn on GPUs, ddp_fork on CPUs), "
            "ddp_spawn or ddp_fork")
