"""Authentication: from an HTTP ``Authorization`` header to a :class:`Principal`, or a refusal.

A door only authenticates; authorization, limits and audit happen in the call path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from qsysd.access._principal import Door, Principal
from qsysd.access._roles import Roles
from qsysd.access._tokens import TokenStore
from qsysd.errors import AuthenticationFailed

if TYPE_CHECKING:
    from qsysd.config import Config

__all__ = ["Authenticator"]


class Authenticator:
    """Turns the credentials of a request into a principal for ``mode`` (``none``, ``token``).

    With ``none`` every caller is ``local`` with every permission: only allowed on loopback
    (or when ``http.allow_unauthenticated_network`` says another layer authenticates).
    """

    def __init__(
        self,
        mode: Literal["none", "token"] = "none",
        *,
        tokens: TokenStore | None = None,
        roles: Roles | None = None,
    ) -> None:
        if mode == "token" and tokens is None:
            raise ValueError("token authentication needs a TokenStore")
        self.mode = mode
        self.tokens = tokens
        self.roles = roles or Roles()

    @classmethod
    def from_config(cls, config: Config) -> Authenticator:
        """The authenticator ``config`` asks for; an invalid tokens file raises ConfigError."""
        roles = Roles(config.auth.roles)
        tokens = TokenStore(config.tokens_path(), roles=roles.__contains__)
        if config.auth.mode == "token":
            tokens.load()
        return cls(config.auth.mode, tokens=tokens, roles=roles)

    @property
    def required(self) -> bool:
        return self.mode != "none"

    def authenticate(self, authorization: str | None, door: Door, address: str | None) -> Principal:
        """The principal for an ``Authorization`` header value, or AuthenticationFailed."""
        if self.mode == "none":
            return Principal("local", door=door, address=address)
        if authorization is None:
            raise AuthenticationFailed(
                "authentication required: send 'Authorization: Bearer <token>' "
                "(`qsysd token create` makes a token)",
                error=None,
            )
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        assert self.tokens is not None
        record = self.tokens.authenticate(credentials)
        return Principal(
            record.name,
            door=door,
            role=record.role,
            permissions=self.roles.permissions(record.role),
            address=address,
        )
