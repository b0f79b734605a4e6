"""One emulated Core as its clients see it: status, access control, faults, sessions.

Sans-IO like the model: the I/O layer (``_server``) owns sockets and time, and hands each
connection a :class:`~qsysd.emulator._session.Session` made by :meth:`Engine.open_session`.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

import attrs

from qsysd.emulator._model import Core
from qsysd.emulator._session import Session
from qsysd.emulator._values import STATUS_STRINGS

__all__ = ["MAX_CHANGE_GROUPS_PER_CONNECTION", "MAX_CHANGE_GROUPS_PER_CORE", "Engine", "Faults"]

MAX_CHANGE_GROUPS_PER_CONNECTION = 4
MAX_CHANGE_GROUPS_PER_CORE = 512
_CODE_ALPHABET = string.ascii_letters + string.digits


def new_design_code() -> str:
    """A fresh DesignCode: 12 letters and digits, like a Core's."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))


@attrs.define
class Faults:
    """Faults the I/O layer and sessions apply (see ``EmulatorServer`` for the methods)."""

    #: Read requests but answer nothing and push nothing; sockets stay open.
    stalled: bool = False
    #: Seconds to wait before sending each reply.
    reply_delay: float = 0.0
    #: Send every frame in two writes with a short pause between them.
    split_frames: bool = False
    #: Answer every Logon with error 10, right password or not.
    refuse_logon: bool = False


class Engine:
    """Status, credentials, faults and open sessions of one emulated Core."""

    def __init__(
        self,
        core: Core,
        *,
        design_code: str | None = None,
        platform: str | None = None,
        state: str = "Active",
        is_redundant: bool = False,
        is_emulator: bool = True,
        password: str | None = None,
        user: str | None = None,
    ) -> None:
        self.core = core
        self.design_code = design_code or core.design.design_code or new_design_code()
        self.platform = platform or core.design.platform
        self.state = state
        self.is_redundant = is_redundant
        self.is_emulator = is_emulator
        self.status_code = 0
        self.password = password
        self.user = user
        self.faults = Faults()
        self.sessions: set[Session] = set()
        self.max_groups_per_connection = MAX_CHANGE_GROUPS_PER_CONNECTION
        self.max_groups_per_core = MAX_CHANGE_GROUPS_PER_CORE
        self.on_status_change: list[Callable[[], None]] = []

    def status(self) -> dict[str, Any]:
        """StatusGet result and EngineStatus params."""
        return {
            "Platform": self.platform,
            "State": self.state,
            "DesignName": self.core.design.name,
            "DesignCode": self.design_code,
            "IsRedundant": self.is_redundant,
            "IsEmulator": self.is_emulator,
            "Status": {"Code": self.status_code, "String": STATUS_STRINGS[self.status_code]},
        }

    def update_status(self, **changes: Any) -> None:
        """Change ``state``, ``design_code``, ``status_code``...; sessions get EngineStatus."""
        for key, value in changes.items():
            if not hasattr(self, key):
                raise AttributeError(key)
            setattr(self, key, value)
        for session in list(self.sessions):
            session.push_engine_status()
        for callback in self.on_status_change:
            callback()

    def open_session(self, *, transport: str = "tcp") -> Session:
        """A new connection's protocol state; it queues EngineStatus at once."""
        session = Session(self, transport=transport)
        self.sessions.add(session)
        return session

    def change_group_count(self) -> int:
        return sum(len(s.groups) for s in self.sessions)

    def check_logon(self, user: object, password: object) -> bool:
        if self.faults.refuse_logon:
            return False
        if self.password is None:
            return True
        if self.user is not None and user != self.user:
            return False
        return isinstance(password, str) and secrets.compare_digest(
            password.encode(), self.password.encode()
        )
