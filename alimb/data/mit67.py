"""MIT-67 indoor scenes: `Images/<class>/*.jpg`, with the official `TrainImages.txt` / `TestImages.txt`.

Pool = every image not in the test list (the dataset's own imbalance); test = the official 20/class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alimb.data import download as dl
from alimb.data.download import Download, Root
from alimb.data.images import IMAGE_SUFFIXES, ImageDataset, ImageSet, root_key
from alimb.errors import UserError
from alimb.options import OnBadImage

URL = "http://groups.csail.mit.edu/vision/LabelMe/NewImages/indoorCVPR_09.tar"
LIST_URL = "http://web.mit.edu/torralba/www/{name}"


def load_mit67(root: Root = "data", download: Download = True, on_bad_image: OnBadImage = "skip") -> ImageDataset:
    base = Path(root).expanduser()
    folder = base / "mit67"
    dl.fetch_or_explain("MIT-67", folder / "Images", URL, folder / "indoorCVPR_09.tar", None, download)
    test_list = folder / "TestImages.txt"
    if not test_list.exists():
        try:
            if not download:
                raise OSError("downloads are off")
            dl.download(LIST_URL.format(name="TestImages.txt"), test_list)
        except OSError as err:
            raise UserError(
                f"MIT-67 test list not found: expected {test_list} ({err}); download "
                f"{LIST_URL.format(name='TestImages.txt')} and put it there"
            ) from None
    images = folder / "Images"
    classes = sorted(p.name for p in images.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    every = sorted(
        p.relative_to(images).as_posix() for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    test = [line.strip() for line in test_list.read_text().splitlines() if line.strip()]
    unknown = sorted(set(test) - set(every))
    if unknown:
        raise UserError(f"{test_list} names {len(unknown)} images missing from {images}, e.g. {unknown[0]}")
    test_set = set(test)
    train = [item for item in every if item not in test_set]

    def image_set(items: list[str]) -> ImageSet:
        return ImageSet(np.array([index[i.split("/")[0]] for i in items]), paths=[images / i for i in items])

    return ImageDataset(image_set(train), image_set(test), classes, root_key("mit67", folder), on_bad_image)
