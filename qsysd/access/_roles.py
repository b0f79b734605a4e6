"""Roles: named permission sets; the built-in three and custom ones from the configuration."""

from __future__ import annotations

from collections.abc import Mapping

from qsysd.plugins import PERMISSIONS, Permission

__all__ = ["BUILTIN_ROLES", "Roles"]

#: viewer reads; operator also writes; admin also saves snapshots and administers tokens.
BUILTIN_ROLES: Mapping[str, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "write"}),
    "admin": frozenset(PERMISSIONS),
}


class Roles:
    """Role name -> permissions: the built-in roles plus ``custom`` ones (checked by config)."""

    def __init__(self, custom: Mapping[str, list[str]] | None = None) -> None:
        self._roles: dict[str, frozenset[Permission]] = dict(BUILTIN_ROLES)
        for name, permissions in (custom or {}).items():
            self._roles[name] = frozenset(p for p in PERMISSIONS if p in permissions)

    def __contains__(self, name: object) -> bool:
        return name in self._roles

    def names(self) -> list[str]:
        return sorted(self._roles)

    def permissions(self, role: str) -> frozenset[Permission]:
        """The permissions of ``role``; an unknown role (a stale token) has none."""
        return self._roles.get(role, frozenset())
