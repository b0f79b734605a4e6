"""API tokens: hashed at rest, file mode 0600, reloaded on change, revoked at once; roles."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from qsysd.access import TOKEN_PREFIX, Authenticator, Roles, TokenStore
from qsysd.errors import (
    AuthenticationFailed,
    ConfigError,
    FileNotWritable,
    LookupFailed,
    ToolInputError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def store(tmp_path: Path, clock: Clock | None = None) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json", roles=Roles().__contains__,
                      clock=clock)  # fmt: skip


def test_a_token_is_random_prefixed_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    token = tokens.create("panel", "viewer")
    other = tokens.create("svc", "operator")
    assert token.startswith(TOKEN_PREFIX) and token != other
    assert len(token) - len(TOKEN_PREFIX) >= 43  # 32 random bytes, base64url
    text = tokens.path.read_text()
    assert token not in text and token[len(TOKEN_PREFIX) :] not in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    data = json.loads(text)
    assert [t["name"] for t in data["tokens"]] == ["panel", "svc"]
    assert not [p for p in tokens.path.parent.iterdir() if p.name.startswith(".tokens")]
    assert tokens.authenticate(token).role == "viewer"
    assert tokens.authenticate(other).name == "svc"


def test_a_wrong_or_revoked_token_is_refused_without_naming_it(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    token = tokens.create("panel", "viewer")
    with pytest.raises(AuthenticationFailed) as refused:
        tokens.authenticate(token + "x")
    assert token not in str(refused.value)
    # Another process (`qsysd token revoke`) changes the file: the next use sees it.
    store(tmp_path).revoke("panel")
    with pytest.raises(AuthenticationFailed, match="unknown or revoked"):
        tokens.authenticate(token)
    with pytest.raises(LookupFailed, match="no token named 'panel'"):
        tokens.revoke("panel")


def test_a_token_expires(tmp_path: Path) -> None:
    clock = Clock()
    tokens = store(tmp_path, clock)
    token = tokens.create("temp", "operator", expires_days=1)
    assert tokens.authenticate(token).name == "temp"
    clock.now += 86_400
    with pytest.raises(AuthenticationFailed, match="'temp' expired at"):
        tokens.authenticate(token)


@pytest.mark.parametrize(
    ("name", "role", "days", "message"),
    [
        ("bad name", "viewer", None, "must be 1-64"),
        ("ok", "god", None, "unknown role 'god'"),
        ("ok", "viewer", 0, "expires must be"),
        ("ok", "viewer", 10_000, "expires must be"),
    ],
)
def test_bad_token_requests_are_refused_clearly(
    tmp_path: Path, name: str, role: str, days: float | None, message: str
) -> None:
    with pytest.raises(ToolInputError, match=message):
        store(tmp_path).create(name, role, expires_days=days)


def test_a_duplicate_name_is_refused(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    tokens.create("panel", "viewer")
    with pytest.raises(ToolInputError, match="exists"):
        tokens.create("panel", "admin")


def test_an_invalid_file_is_a_config_error_at_start_and_fails_closed_later(
    tmp_path: Path,
) -> None:
    tokens = store(tmp_path)
    token = tokens.create("panel", "viewer")
    tokens.load()
    tokens.path.write_text('{"version": 1, "tokens": [{"name": "x"}]}')
    with pytest.raises(AuthenticationFailed):
        tokens.authenticate(token)  # no stale token keeps working
    with pytest.raises(ConfigError, match=r"tokens\[0\]: missing 'role'"):
        store(tmp_path).load()
    tokens.path.write_text("not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        store(tmp_path).load()


def test_a_missing_file_means_no_tokens(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    tokens.load()
    assert tokens.records() == []
    with pytest.raises(AuthenticationFailed):
        tokens.authenticate(TOKEN_PREFIX + "x")


def test_roles_give_permissions_and_custom_roles_add_to_them() -> None:
    roles = Roles({"panel": ["read", "write"], "auditor": ["read", "admin"]})
    assert roles.permissions("viewer") == {"read"}
    assert roles.permissions("operator") == {"read", "write"}
    assert roles.permissions("admin") == {"read", "write", "admin"}
    assert roles.permissions("auditor") == {"read", "admin"}
    assert roles.permissions("gone") == frozenset()  # a stale token's role: nothing
    assert "panel" in roles and roles.names() == ["admin", "auditor", "operator", "panel",
                                                  "viewer"]  # fmt: skip


def test_the_authenticator_reads_bearer_tokens_only(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    token = tokens.create("panel", "viewer")
    auth = Authenticator("token", tokens=tokens)
    principal = auth.authenticate(f"Bearer {token}", "rest", "127.0.0.1")
    assert (principal.name, principal.role, principal.door) == ("panel", "viewer", "rest")
    assert principal.permissions == {"read"} and principal.address == "127.0.0.1"
    with pytest.raises(AuthenticationFailed) as missing:
        auth.authenticate(None, "mcp", None)
    assert missing.value.error is None
    for header in (f"Basic {token}", "Bearer ", token):
        with pytest.raises(AuthenticationFailed) as bad:
            auth.authenticate(header, "mcp", None)
        assert bad.value.error == "invalid_request" and token not in str(bad.value)
    local = Authenticator().authenticate(None, "rest", "127.0.0.1")
    assert local.name == "local" and local.may("admin")


def test_the_tokens_file_is_replaced_atomically(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    tokens.create("a", "viewer")
    inode = tokens.path.stat().st_ino
    tokens.create("b", "viewer")
    assert tokens.path.stat().st_ino != inode  # a new file renamed over the old one
    assert os.access(tokens.path, os.R_OK)


def test_a_tokens_file_that_cannot_be_changed_is_named_and_left_intact(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    tokens.create("panel", "viewer")
    before = tokens.path.read_bytes()
    lock = tokens.path.with_name("tokens.json.lock")
    lock.unlink()
    lock.mkdir()  # what a read-only copy does to the lock file, even for root
    for change in (lambda: tokens.create("svc", "operator"), lambda: tokens.revoke("panel")):
        with pytest.raises(FileNotWritable) as caught:
            change()
        assert str(tokens.path) in str(caught.value) and "read-only" in str(caught.value)
    assert tokens.path.read_bytes() == before
    assert [r.name for r in tokens.records()] == ["panel"]
