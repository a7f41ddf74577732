"""Files that a reader sees whole or not at all, and a full disk said in one line with nothing half-written left."""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from alimb.errors import UserError


class DiskFull(UserError):
    """No space left where a file had to be written: the path, what it needed, what is free."""


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} bytes"


def _free(path: Path) -> str:
    for p in [path, *path.parents]:
        try:
            return _size(shutil.disk_usage(p).free)
        except OSError:
            continue
    return "an unknown amount"


@contextmanager
def writing(path: Path, needed: int, *temporary: Path) -> Iterator[None]:
    """Around a write of about `needed` bytes to `path`: on a full disk (or quota) the `temporary` files are removed
    and one line names the path, the space needed and the space free."""
    try:
        yield
    except OSError as err:
        for tmp in temporary:
            Path(tmp).unlink(missing_ok=True)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"no space left to write {path} (it needs about {_size(max(needed, 1))}, "
                           f"{_free(Path(path).parent)} are free); make room and run the same command again: nothing "
                           "written so far is lost") from None
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, len(text.encode()), tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    with writing(path, int(np.asarray(array).nbytes) + 128, tmp):
        np.save(tmp, array)
        os.replace(tmp, path)


def append_line(path: Path, line: str) -> None:
    """Append one line durably; on failure the file is cut back to what it held (no partial line is left)."""
    size = path.stat().st_size if path.exists() else 0
    try:
        with writing(path, len(line.encode())):
            with open(path, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        if path.exists():
            os.truncate(path, size)
        raise
