"""Tokens against a real server: personal access tokens (exchanged, re-exchanged), access and legacy tokens, and
one-line errors that never contain the token."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
import requests

from alimb.errors import UserError
from alimb.oracles.label_studio import LabelStudio, token_kind
from tests_labelstudio.server import ADMIN_EMAIL, free_port


class Recording(requests.Session):
    """A session that remembers the paths it requested."""

    def __init__(self):
        super().__init__()
        self.paths: list[str] = []

    def request(self, method, url, *args, **kwargs):
        self.paths.append(url.split("://", 1)[1].split("/", 1)[1].split("?")[0])
        return super().request(method, url, *args, **kwargs)


def refused(client: LabelStudio, secret: str) -> str:
    """The one-line message of the UserError a call with a bad token raises; it must not contain the token."""
    with pytest.raises(UserError) as e:
        client.whoami()
    message = str(e.value)
    assert "\n" not in message
    assert secret not in message and secret not in repr(client)
    assert e.value.__cause__ is None
    return message


def test_a_personal_access_token_is_exchanged_for_an_access_token(server, token):
    assert token_kind(token) == "personal"
    session = Recording()
    client = LabelStudio(server.url, token, session=session)
    assert client.whoami()["email"] == ADMIN_EMAIL
    client.whoami()
    assert session.paths == ["api/token/refresh", "api/current-user/whoami", "api/current-user/whoami"]


def test_an_expired_access_token_is_exchanged_again(server, token):
    session = Recording()
    client = LabelStudio(server.url, token, session=session)
    client.whoami()
    # the server's access tokens live 5 minutes; stand-ins for one it no longer accepts and one about to expire
    client._access = client._access[:-4] + "AAAA"
    assert client.whoami()["email"] == ADMIN_EMAIL
    client._access_expires = time.time() + 5
    client.whoami()
    assert session.paths == ["api/token/refresh", "api/current-user/whoami",
                             "api/current-user/whoami", "api/token/refresh", "api/current-user/whoami",  # on the 401
                             "api/token/refresh", "api/current-user/whoami"]  # before expiry, no 401


def test_an_access_token_works_until_it_expires(server, token):
    access = requests.post(server.url + "/api/token/refresh", json={"refresh": token}).json()["access"]
    assert token_kind(access) == "access"
    assert LabelStudio(server.url, access).whoami()["email"] == ADMIN_EMAIL


@pytest.mark.parametrize("bad", ["not-a-token", "0123456789abcdef0123456789abcdef01234567", "tampered"])
def test_a_bad_token_is_one_line_naming_the_variable_and_the_remedy(server, token, bad):
    if bad == "tampered":  # a well-formed personal access token with a wrong signature
        bad = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    message = refused(LabelStudio(server.url, bad, token_env="MY_LS_TOKEN"), bad)
    assert message.startswith(f"Label Studio at {server.url} refused the ")
    assert "MY_LS_TOKEN" in message and "Personal Access Token" in message


def test_a_revoked_personal_access_token_is_refused(server):
    browser = server.sign_up("revoked@example.com", "revoked-pass-1")
    revoked = server.personal_access_token(browser)
    client = LabelStudio(server.url, revoked)
    assert client.whoami()["email"] == "revoked@example.com"
    assert browser.post("/api/token/blacklist/", json={"refresh": revoked}).status_code == 204
    fresh = LabelStudio(server.url, revoked)
    assert "blacklisted" in refused(fresh, revoked)


def test_legacy_tokens_are_refused_by_default_and_work_where_enabled(server, admin):
    legacy = admin.get("/api/current-user/token").json()["token"]
    assert token_kind(legacy) == "legacy"
    assert "legacy tokens are disabled on this server" in refused(LabelStudio(server.url, legacy), legacy)
    assert admin.post("/api/jwt/settings", json={"api_tokens_enabled": True,
                                                 "legacy_api_tokens_enabled": True}).status_code == 200
    try:
        assert LabelStudio(server.url, legacy).whoami()["email"] == ADMIN_EMAIL
    finally:
        admin.post("/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": False})


def test_an_unreachable_server_is_one_line_naming_the_url(token):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UserError) as e:
        LabelStudio(url, token).whoami()
    message = str(e.value)
    assert message.startswith(f"cannot reach Label Studio at {url} ") and "oracle.url" in message
    assert "\n" not in message and token not in message


def test_a_server_that_is_not_label_studio_is_named(token):
    port = free_port()
    httpd = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UserError) as e:
            LabelStudio(f"http://127.0.0.1:{port}", token).whoami()
    finally:
        httpd.shutdown()
    assert "did not answer as Label Studio's API" in str(e.value) and token not in str(e.value)


def test_a_missing_token_or_a_bad_url_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(UserError, match="no Label Studio API token: .*set LABEL_STUDIO_API_KEY"):
        LabelStudio.from_env("http://127.0.0.1:1")
    with pytest.raises(UserError, match="must start with http"):
        LabelStudio("127.0.0.1:8080", "x")
