"""Make torchvision importable on a CPU-only torch whose torchvision wheel is a CUDA build.

PyPI's torchvision 0.28.0 ships a CUDA-linked `_C` extension. With a CPU torch that extension
fails to load, and torchvision's import then dies registering fake kernels for ops whose schemas
the extension would have defined (`operator torchvision::nms does not exist`); `import lightning`
fails with it. Defining the two missing schemas before torchvision's first import is enough for
models, datasets and transforms. torchvision.ops and io decoding stay unavailable in that case,
and alimb uses neither.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys


def ensure_torchvision_importable() -> None:
    """Register torchvision's nms/qnms schemas iff torch has no CUDA and the extension can't load."""
    if "torchvision" in sys.modules:
        return
    import torch

    if torch.version.cuda is not None:
        return  # a CUDA torch loads torchvision's own extension
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    libs = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    try:
        for lib in libs:
            torch.ops.load_library(lib)
        return  # a CPU build of torchvision: its extension loaded, nothing to do
    except OSError:
        pass
    if hasattr(torch.ops.torchvision, "nms"):
        return
    fragment = torch.library.Library("torchvision", "FRAGMENT")
    fragment.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    fragment.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    # keep the fragment alive for the life of the process (its destructor would drop the schemas)
    _FRAGMENTS.append(fragment)


_FRAGMENTS: list = []
