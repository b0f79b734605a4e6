"""API tokens: created once, stored only as hashes, checked in constant time, reloaded on change.

The tokens file is JSON ``{"version": 1, "tokens": [{name, role, sha256, created, expires}]}``,
written atomically (a temporary file renamed over it) with mode 0600, under an exclusive lock
so ``qsysd token`` and the admin API never lose each other's changes.

Only SHA-256 of a token is stored. A slow password hash (scrypt, argon2) protects guessable
secrets; a token is 256 random bits, so nobody can search its hash, and a fast hash keeps the
check on every request cheap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import structlog

from qsysd.errors import (
    AuthenticationFailed,
    ConfigError,
    FileNotWritable,
    LookupFailed,
    ToolInputError,
    describe_os_error,
)

__all__ = ["TOKEN_PREFIX", "TokenRecord", "TokenStore"]

log = structlog.get_logger("qsysd.access")

#: Every token starts with this: secret scanners and people recognise a leaked one.
TOKEN_PREFIX = "qsysd_"
_TOKEN_BYTES = 32  # 256 bits
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_FORMAT_VERSION = 1


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a file changed: modification time, size and inode (a rename over it)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


@attrs.frozen
class TokenRecord:
    """What the tokens file knows of one token: never the token itself."""

    name: str
    role: str
    sha256: str = attrs.field(repr=False)
    created: float
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def public(self) -> dict[str, Any]:
        """The record as listed to an administrator (no hash)."""
        return {
            "name": self.name,
            "role": self.role,
            "created": _iso(self.created),
            "expires": _iso(self.expires) if self.expires is not None else None,
        }

    def stored(self) -> dict[str, Any]:
        return {**self.public(), "sha256": self.sha256}


def _record(raw: Any, where: str) -> TokenRecord:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    try:
        name, role, digest = raw["name"], raw["role"], raw["sha256"]
        created = _parse_iso(raw["created"])
        expires = None if raw.get("expires") is None else _parse_iso(raw["expires"])
    except KeyError as exc:
        raise ValueError(f"{where}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise ValueError(f"{where}: created/expires must be YYYY-MM-DDTHH:MM:SSZ") from None
    if not isinstance(name, str) or not isinstance(role, str) or not isinstance(digest, str):
        raise ValueError(f"{where}: name, role and sha256 must be strings")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits")
    return TokenRecord(name, role, digest, created, expires)


def _parse(text: str, path: Path) -> list[TokenRecord]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError([f"auth.tokens_file: {str(path)!r} is not JSON: {exc}"]) from None
    if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
        raise ConfigError(
            [f"auth.tokens_file: {str(path)!r} is not a qsysd tokens file (version 1)"]
        )
    raw = data.get("tokens")
    if not isinstance(raw, list):
        raise ConfigError([f"auth.tokens_file: {str(path)!r}: 'tokens' must be a list"])
    try:
        return [_record(r, f"tokens[{i}]") for i, r in enumerate(raw)]
    except ValueError as exc:
        raise ConfigError([f"auth.tokens_file: {str(path)!r}: {exc}"]) from None


class TokenStore:
    """The tokens of one tokens file; :meth:`authenticate` re-reads the file when it changed.

    ``roles`` tells the role names a new token may have; ``clock`` gives the time (epoch s).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        roles: Callable[[str], bool] = lambda role: True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.path = Path(path)
        self._is_role = roles
        self._clock = clock or time.time
        self._records: list[TokenRecord] = []
        self._seen: tuple[int, int, int] | None = None
        self.reloads = 0

    # reading -------------------------------------------------------------------------------

    def _read(self) -> list[TokenRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"auth.tokens_file: cannot read {str(self.path)!r}: {exc}"
            raise ConfigError([problem]) from None
        return _parse(text, self.path)

    def load(self) -> None:
        """Read the file now; an invalid file raises :class:`ConfigError` (checked at start)."""
        signature = file_signature(self.path)
        self._records = self._read()
        self._seen = signature
        self.reloads += 1
        log.info("tokens.loaded", path=str(self.path), tokens=len(self._records))

    def reload_if_changed(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; an invalid file then fails closed (no token works)."""
        signature = file_signature(self.path)
        if signature == self._seen and not force:
            return
        try:
            self.load()
        except ConfigError as exc:
            self._records = []
            self._seen = signature
            log.error("tokens.invalid_file", problem=exc.problems[0], path=str(self.path))

    def records(self) -> list[TokenRecord]:
        self.reload_if_changed()
        return list(self._records)

    def authenticate(self, token: str) -> TokenRecord:
        """The record of ``token``, or :class:`AuthenticationFailed` (never naming the token)."""
        self.reload_if_changed()
        digest = _hash(token)
        found = None
        # Compare against every record in constant time: no early exit tells a guess apart.
        for record in self._records:
            if hmac.compare_digest(record.sha256, digest):
                found = record
        if found is None:
            raise AuthenticationFailed("the bearer token is not valid (unknown or revoked)")
        if found.expired(self._clock()):
            raise AuthenticationFailed(
                f"the bearer token {found.name!r} expired at {_iso(found.expires or 0)}"
            )
        return found

    # writing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[TokenRecord]]:
        """The records under an exclusive lock; changes to the yielded list are written."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._not_writable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read()
            yield records
            try:
                self._write(records)
            except OSError as exc:
                raise self._not_writable(exc) from None
        finally:
            os.close(fd)
        self.reload_if_changed()

    def _not_writable(self, exc: OSError) -> FileNotWritable:
        # A systemd credential or a mounted Secret is a read-only copy: say where to change it.
        return FileNotWritable(
            f"the tokens file {self.path} cannot be changed here ({describe_os_error(exc)}): "
            "if it is a read-only copy (a systemd credential, a mounted secret), run "
            "`qsysd token` where the original is kept, then restart qsysd"
        )

    def _write(self, records: list[TokenRecord]) -> None:
        data = {"version": _FORMAT_VERSION, "tokens": [r.stored() for r in records]}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create(self, name: str, role: str, *, expires_days: float | None = None) -> str:
        """Create token ``name`` with ``role``; the token, which is shown only this once."""
        if not _NAME.match(name):
            raise ToolInputError(
                f"token name {name[:70]!r} must be 1-64 letters, digits, '_', '.', '@' or '-'"
            )
        if not self._is_role(role):
            raise ToolInputError(f"unknown role {role[:40]!r}")
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise ToolInputError(f"expires must be 0 to 3650 days, got {expires_days:g}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
        now = self._clock()
        expires = now + expires_days * 86_400 if expires_days is not None else None
        with self._locked() as records:
            if any(r.name == name for r in records):
                raise ToolInputError(
                    f"a token named {name!r} exists; revoke it first or choose another name"
                )
            records.append(TokenRecord(name, role, _hash(token), float(int(now)), expires))
        log.info("tokens.created", name=name, role=role, expires=_iso(expires) if expires else None)
        return token

    def revoke(self, name: str) -> TokenRecord:
        """Remove token ``name``; it stops working at once (the file's change is seen on use)."""
        with self._locked() as records:
            for i, record in enumerate(records):
                if record.name == name:
                    del records[i]
                    break
            else:
                known = [r.name for r in records]
                raise LookupFailed(
                    f"no token named {name[:70]!r}", hint=f"Known tokens: {', '.join(known)}."
                    if known else "There are no tokens.",
                )  # fmt: skip
        log.info("tokens.revoked", name=name)
        return record
