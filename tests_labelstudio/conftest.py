"""Fixtures: one real Label Studio server per session (`make test-labelstudio`), a personal access token, a client,
and a scripted annotator. Tests that need no server (test_files.py) run without one."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from PIL import Image

from alimb.oracles.label_studio import LabelStudio
from tests_labelstudio import server as ls
from tests_labelstudio.annotator import Annotator

PAGE_SIZE = 3  # small pages: every test with more than three tasks goes through the pagination


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A Label Studio server on 127.0.0.1 for the whole session."""
    binary = ls.label_studio_binary()
    if binary is None:
        pytest.skip("needs Label Studio: `make test-labelstudio` installs it and sets LABEL_STUDIO_BIN")
    running = ls.start(binary, tmp_path_factory.mktemp("label_studio"))
    yield running
    ls.stop(running)


@pytest.fixture(scope="session")
def admin(server) -> ls.Browser:
    return server.login()


@pytest.fixture(scope="session")
def token(server, admin) -> str:
    """The admin's personal access token, made as a user makes one on Account & Settings."""
    return server.personal_access_token(admin)


@pytest.fixture
def client(server, token) -> LabelStudio:
    return LabelStudio(server.url, token, page_size=PAGE_SIZE)


@pytest.fixture(scope="session")
def annotator(admin) -> Annotator:
    return Annotator(admin)


@pytest.fixture
def title(request) -> str:
    """A project title no other test uses."""
    return f"{request.node.name[5:30]}-{uuid.uuid4().hex[:6]}"  # Label Studio: 3 to 50 characters


@pytest.fixture
def images(server, title) -> list[Path]:
    """Eight small PNGs in a folder of their own under the server's document root (the last name needs quoting)."""
    folder = server.document_root / title
    folder.mkdir()
    paths = []
    for i in range(8):
        path = folder / (f"img_{i}.png" if i < 7 else "img 7 é.png")
        Image.new("RGB", (8, 8), (30 * i, 255 - 30 * i, 7)).save(path)
        paths.append(path)
    return paths
