"""Who is calling, through which door."""

from __future__ import annotations

from typing import Literal

import attrs

from qsysd.plugins import PERMISSIONS, Permission

__all__ = ["DOORS", "Door", "Principal"]

Door = Literal["stdio", "mcp", "rest"]
DOORS: tuple[Door, ...] = ("stdio", "mcp", "rest")


@attrs.frozen
class Principal:
    """An authenticated caller: its name (for the audit), role and permissions, and door.

    ``address`` is the client's network address where the door has one.
    """

    name: str
    door: Door
    role: str = "admin"
    permissions: frozenset[Permission] = frozenset(PERMISSIONS)
    address: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions
