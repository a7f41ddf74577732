"""A real Label Studio server on loopback for the tests, and browser-like logins to it.

`make test-labelstudio` installs Label Studio into its own virtual environment (.venv-ls) and names the
`label-studio` executable in LABEL_STUDIO_BIN. The server keeps its database in a temporary data folder, serves
local files under a temporary document root, and listens on 127.0.0.1 only (`--internal-host`: `--host` only sets
the name in the links it makes and leaves the server listening on every interface).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ADMIN_EMAIL, ADMIN_PASSWORD = "alimb-admin@example.com", "alimb-admin-pass-1"
START_TIMEOUT_S = 240  # first start runs the database migrations: ~25 s here, ~90 s on a busy 2-core machine


def label_studio_binary() -> str | None:
    """The `label-studio` executable: LABEL_STUDIO_BIN, else the one on PATH."""
    return os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")


def free_port() -> int:
    """A TCP port nothing listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser(requests.Session):
    """A logged-in browser: Django's session cookie, and the CSRF header on requests that change something."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.get(url + "/user/login/").raise_for_status()  # sets the csrftoken cookie

    def request(self, method, url, *args, **kwargs):
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            headers = kwargs.setdefault("headers", {}) or {}
            headers.update({"X-CSRFToken": self.cookies.get("csrftoken", ""), "Referer": self.url + "/"})
            kwargs["headers"] = headers
        return super().request(method, url if url.startswith("http") else self.url + url, *args, **kwargs)

    def form(self, path: str, **fields: str) -> requests.Response:
        """Post a web form (login, sign-up) as the page would."""
        return self.post(path, data={**fields, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")},
                         allow_redirects=False)


@dataclass
class Server:
    """A running Label Studio: its address, the document root it serves local files from, its log."""

    url: str
    document_root: Path
    log: Path
    process: subprocess.Popen

    def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Browser:
        """A browser session logged in as the user."""
        browser = Browser(self.url)
        r = browser.form("/user/login/", email=email, password=password)
        assert r.status_code == 302 and browser.cookies.get("sessionid"), f"login as {email} failed: {r.status_code}"
        return browser

    def sign_up(self, email: str, password: str) -> Browser:
        """A new user, signed up through the web form (joins the server's one organization), logged in."""
        browser = Browser(self.url)
        r = browser.form("/user/signup/", email=email, password=password, how_find_us="", allow_newsletters="false")
        assert r.status_code == 302, f"sign-up of {email} failed: {r.status_code} {r.text[:300]}"
        return browser

    def personal_access_token(self, browser: Browser) -> str:
        """A new personal access token of the logged-in user, as Account & Settings creates one."""
        r = browser.post("/api/token/")
        assert r.status_code == 201, f"creating a personal access token failed: {r.status_code} {r.text[:300]}"
        return r.json()["token"]

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def start(binary: str, base: Path, timeout: float = START_TIMEOUT_S) -> Server:
    """Start Label Studio with its data and document root under `base`; return once /health answers."""
    port = free_port()
    root = base / "document_root"
    root.mkdir(parents=True)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(base / "data"),
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root)}
    for key in ("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
        env.pop(key, None)
    log = base / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
             "--username", ADMIN_EMAIL, "--password", ADMIN_PASSWORD],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", root, log, process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(server.url + "/health", timeout=5).ok:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"label-studio did not answer /health within {timeout:g} s:\n{server.log_tail()}")
        time.sleep(1)


def stop(server: Server) -> None:
    """Stop the server (its own process group, started by `start`)."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
