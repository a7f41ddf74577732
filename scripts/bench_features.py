"""Feature-extraction throughput: the full path (decode, resize, normalise, model) vs the model alone.

    .venv/bin/python scripts/bench_features.py [--backbone resnet18] [--n 2048] [--weights null]

`--backbone` is any option of `conf/backbone` (resnet18, dinov2_vits14, clip_vitb16_openai, resnet50, ...),
built from its config as `alimb backbone=NAME` builds it, at its own resolution and normalisation.

    .venv/bin/python scripts/bench_features.py --memory [--n 115846] [--dim 384]

Peak memory of `alimb.features.featurize` at ImageNet-LT's size (115 846 pool images; a pixel backbone of ~`dim`
features stands in for the model, whose own memory is not the point): the cache file is streamed batch by batch
and read back memory-mapped; target: peak RSS growth <= 2x the features' bytes.

For CIFAR-size images (in-memory uint8, upsampled to 224 on the device) and 224-px JPEG files
(decoded by loader workers), images/s of `alimb.features.extract` vs the backbone alone on
pre-loaded, pre-normalised tensors already on the device (the bound).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from omegaconf import OmegaConf

from alimb.config import build, load_option
from alimb.data.images import ImageSet
from alimb.features import extract
from alimb.devices import describe_machine, peak_memory_growth


def bound(backbone, model: torch.nn.Module, n: int) -> float:
    """Images/s of the model alone on normalised (B, 3, res, res) tensors already on the device."""
    x = torch.randn(backbone.batch_size, 3, backbone.resolution, backbone.resolution, device=backbone.device)
    if backbone.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=backbone.device.type == "cuda")
    with torch.inference_mode(), autocast:
        model(x)  # warm-up
        if backbone.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(max(1, n // backbone.batch_size)):
            model(x).float().cpu()
        if backbone.device.type == "cuda":
            torch.cuda.synchronize()
    return max(1, n // backbone.batch_size) * backbone.batch_size / (time.perf_counter() - t0)


def full_path(backbone, model: torch.nn.Module, images: ImageSet) -> float:
    extract(images.subset(np.arange(min(len(images), backbone.batch_size))), backbone, model)  # warm-up
    t0 = time.perf_counter()
    features, bad = extract(images, backbone, model)
    assert not bad and len(features) == len(images)
    return len(images) / (time.perf_counter() - t0)


def memory(n: int, dim: int) -> dict:
    """Peak RSS growth of featurize (extract into the cache, read it back) over the features' size."""
    from alimb.backbone import Pixels
    from alimb.data.images import ImageDataset
    from alimb.features import featurize

    side = max(1, round((dim / 3) ** 0.5))
    rng = np.random.default_rng(0)
    train = ImageSet(rng.integers(0, 1000, n), arrays=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8))
    test = ImageSet(np.arange(8) % 1000, arrays=rng.integers(0, 256, (8, side, side, 3), dtype=np.uint8))
    data = ImageDataset(train, test, [str(c) for c in range(1000)], key="memory-bench")
    backbone = Pixels(resolution=side, batch_size=256, num_workers=0)
    feature_bytes = n * 3 * side * side * 4
    box = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        grew = peak_memory_growth(lambda: box.setdefault("out", featurize(data, backbone, tmp)))
        seconds = time.perf_counter() - t0
    assert box["out"].train_x.shape == (n, 3 * side * side)
    return {"images": n, "feature_dim": 3 * side * side, "features_bytes": feature_bytes,
            "peak_rss_growth_bytes": grew, "growth_over_features": grew / feature_bytes, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="images per measurement")
    parser.add_argument("--backbone", default="resnet18", help="an option of conf/backbone")
    parser.add_argument("--memory", action="store_true", help="peak memory of featurize at ImageNet-LT size")
    parser.add_argument("--dim", type=int, default=384, help="--memory: feature width (ViT-S/14: 384)")
    parser.add_argument("--weights", default="null", help="the config's weights need a download; null: random weights")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.memory:
        n = args.n if args.n != parser.get_default("n") else 115_846
        print(json.dumps({"machine": describe_machine(), **memory(n, args.dim)}, indent=2))
        return
    weights = None if args.weights == "null" else args.weights
    cfg = load_option("backbone", args.backbone)
    cfg.weights, cfg.batch_size, cfg.num_workers = weights, args.batch_size, args.workers
    backbone = build(cfg)
    model = backbone.build()
    rng = np.random.default_rng(0)
    report = {"machine": describe_machine(), "backbone": backbone.cache_name, "device": str(backbone.device), "torch_threads": torch.get_num_threads(), "images": args.n,
              "batch_size": args.batch_size, "workers": args.workers}
    model_only = bound(backbone, model, args.n)
    report["model_alone_images_per_s"] = model_only

    cifar = ImageSet(np.zeros(args.n, dtype=np.int64), arrays=rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8))
    speed = full_path(backbone, model, cifar)
    report["cifar_32px"] = {"images_per_s": speed, "fraction_of_bound": speed / model_only}

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path, quality=90)
            paths.append(path)
        files = ImageSet(np.zeros(args.n, dtype=np.int64), paths=paths)
        speed = full_path(backbone, model, files)
    report[f"jpeg_256px_to_{backbone.resolution}"] = {"images_per_s": speed, "fraction_of_bound": speed / model_only}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
