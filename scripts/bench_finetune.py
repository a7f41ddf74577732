"""Fine-tuning throughput: the full data path (FineTuneScheme.fit through the Lightning Trainer, uint8
images augmented on the device) vs the model alone on random normalised tensors already on the device.

    .venv/bin/python scripts/bench_finetune.py [--size 32] [--n 512] [--epochs 2] [--paper-iteration]

`--paper-iteration` also times one paper-size iteration (4000 labeled images, 60 epochs; meant
for a GPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from alimb.backbone import TorchvisionBackbone
from alimb.schemes import Inputs
from alimb.schemes.finetune import FineTuneScheme
from alimb.devices import describe_machine


def model_alone(scheme: FineTuneScheme, n_classes: int, steps: int) -> float:
    """Training images/s of forward + backward + SGD step on tensors already on the device (the bound)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = scheme._new_module(n_classes, seed=0).to(device).train()
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(scheme.batch_size, 3, scheme.image_size, scheme.image_size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        module = module.to(memory_format=torch.channels_last)
    y = torch.randint(0, n_classes, (scheme.batch_size,), device=device)
    bf16 = device.type == "cuda" and str(scheme.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with autocast:
            loss = F.cross_entropy(module(x)[0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step()
    return steps * scheme.batch_size / min(timed(), timed())  # best of two: the bound


def full_path(scheme: FineTuneScheme, n: int, n_classes: int, source_size: int) -> tuple[float, float]:
    """(training images/s, seconds) of FineTuneScheme.fit on n uint8 images of `source_size` px."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, source_size, source_size, 3), dtype=np.uint8)
    y = rng.integers(0, n_classes, n)
    t0 = time.perf_counter()
    scheme.fit(Inputs(images=images), y, n_classes, np.random.default_rng(0))
    seconds = time.perf_counter() - t0
    return n * scheme.epochs / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="training resolution")
    parser.add_argument("--n", type=int, default=512, help="labeled images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--precision", default=None, help="trainer precision (default: bf16-mixed on GPU, 32 on CPU)")
    parser.add_argument("--paper-iteration", action="store_true", help="also time 4000 images x 60 epochs at 224 px")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    gpu = torch.cuda.is_available()
    precision = args.precision or ("bf16-mixed" if gpu else "32-true")
    trainer = {"enable_progress_bar": False, "precision": precision}

    def scheme(size, epochs):
        backbone = TorchvisionBackbone(weights=None, resolution=size, num_workers=0)
        return FineTuneScheme(backbone, thresholding=True, epochs=epochs, image_size=size, trainer=trainer)

    s = scheme(args.size, args.epochs)
    full_path(scheme(args.size, 1), 64, args.classes, args.size)  # warm-up (Trainer set-up, kernels)
    bound = model_alone(s, args.classes, steps=max(8, args.n // s.batch_size))
    speed, seconds = full_path(s, args.n, args.classes, args.size)
    report = {
        "machine": describe_machine(), "device": "cuda" if gpu else "cpu", "torch_threads": torch.get_num_threads(), "precision": precision,
        "size": args.size, "labeled": args.n, "epochs": args.epochs, "batch_size": s.batch_size,
        "model_alone_images_per_s": bound, "full_path_images_per_s": speed, "fraction_of_bound": speed / bound,
        "full_path_seconds": seconds,
    }
    if args.paper_iteration:
        _, seconds = full_path(scheme(224, 60), 4000, args.classes, 224)
        report["paper_iteration_seconds"] = seconds
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
