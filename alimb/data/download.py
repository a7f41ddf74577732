"""Fetching dataset archives: resumable download, checksum, atomic extraction; clear errors offline."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

from alimb.errors import UserError
from alimb.options import PRESENTATION, Doc, Place

# the options of every loader that fetches its archive
Root = Annotated[Place, Doc("where the dataset is found, or downloaded to")]
Download = Annotated[bool, PRESENTATION, Doc("download it when missing; false: a missing archive is an error that says where to "
                               "put it")]

log = logging.getLogger(__name__)


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str | None = None, timeout: float = 30.0) -> Path:
    """Download `url` to `dest`: into `dest.part` (resumed if present), checked, then renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = response.status == 206
        total = response.length
        log.info("downloading %s (%s)%s", url, f"{(total or 0) / 1e6:.0f} MB" if total else "size unknown",
                 f", resuming at {done / 1e6:.0f} MB" if resumed else "")
        with open(part, "ab" if resumed else "wb") as f:
            shutil.copyfileobj(response, f, length=1 << 20)
    if md5 is not None and md5sum(part) != md5:
        part.unlink()
        raise UserError(f"{url} downloaded with a wrong checksum (expected md5 {md5}); run again to retry")
    os.replace(part, dest)
    return dest


def extract(archive: Path, into: Path) -> None:
    """Extract a tar archive into `into`: in a temporary folder first, then each top-level entry moved in."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into, prefix=".extract-") as tmp:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"the archive {archive} is damaged ({reason}); delete it and download it again") from None
        for entry in Path(tmp).iterdir():
            target = into / entry.name
            if not target.exists():
                os.replace(entry, target)


def fetch_or_explain(what: str, expected: Path, url: str, archive: Path, md5: str | None, download_ok: bool) -> None:
    """Make `expected` exist: extract `archive` if present, else download it; on failure one clear error."""
    if expected.exists():
        return
    reason = "downloads are off (dataset.loader.download=false)"
    if not archive.exists() and download_ok:
        try:
            download(url, archive, md5)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = f"download failed: {getattr(err, 'reason', err)}"
    if archive.exists():
        extract(archive, archive.parent)
        if expected.exists():
            return
        reason = f"{archive.name} does not contain {expected.name}"
    raise UserError(
        f"{what} not found: expected {expected} ({reason}); download {url} and put it at {archive} "
        f"or extract it in {archive.parent}"
    )
