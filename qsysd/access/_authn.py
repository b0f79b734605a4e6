"""Authentication: from an HTTP ``Authorization`` header to a :class:`Principal`, or a refusal.

A door only authenticates; authorization, limits and audit happen in the call path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qsysd.access._principal import Door, Principal
from qsysd.access._roles import Roles
from qsysd.access._tokens import TOKEN_PREFIX, TokenStore
from qsysd.errors import AuthenticationFailed

if TYPE_CHECKING:
    from qsysd.access._jwt import JwtVerifier
    from qsysd.config import Config
    from qsysd.config._model import AuthMode

__all__ = ["Authenticator"]


class Authenticator:
    """Turns the credentials of a request into a principal, as ``mode`` says.

    ``token``: API tokens (``qsysd_...``); ``jwt``: JWT access tokens; ``token+jwt``: both,
    told apart by the ``qsysd_`` prefix. With ``none`` every caller is ``local`` with every
    permission: only allowed on loopback (or when ``http.allow_unauthenticated_network``
    says another layer authenticates).
    """

    def __init__(
        self,
        mode: AuthMode = "none",
        *,
        tokens: TokenStore | None = None,
        jwt: JwtVerifier | None = None,
        roles: Roles | None = None,
    ) -> None:
        if mode in ("token", "token+jwt") and tokens is None:
            raise ValueError(f"auth mode {mode!r} needs a TokenStore")
        if mode in ("jwt", "token+jwt") and jwt is None:
            raise ValueError(f"auth mode {mode!r} needs a JwtVerifier")
        self.mode = mode
        self.tokens = tokens
        self.jwt = jwt if mode in ("jwt", "token+jwt") else None
        self.roles = roles or Roles()

    @classmethod
    def from_config(cls, config: Config) -> Authenticator:
        """The authenticator ``config`` asks for; an invalid tokens or keys file: ConfigError.

        The files are read only when HTTP is served: only HTTP clients authenticate.
        """
        from qsysd.config import state_dir_problem
        from qsysd.errors import StartupError

        auth = config.auth
        roles = Roles(auth.roles)
        serving = config.http.enabled
        if serving and auth.uses_tokens and auth.tokens_file is None:
            # The tokens file is in the state folder: say what is wrong with the folder.
            problem = state_dir_problem(config.state.dir)
            if problem is not None:
                raise StartupError(problem)
        # Without JWT-only the store exists in every mode: the admin API administers it.
        tokens = None
        if auth.mode != "jwt":
            tokens = TokenStore(config.tokens_path(), roles=roles.__contains__)
        if tokens is not None and auth.uses_tokens and serving:
            tokens.load()
        verifier = None
        if auth.uses_jwt and serving:
            from qsysd.access._jwt import JwtVerifier

            verifier = JwtVerifier(auth.jwt, is_role=roles.__contains__)
            verifier.load()
        return cls(auth.mode if serving else "none", tokens=tokens, jwt=verifier, roles=roles)

    @property
    def required(self) -> bool:
        return self.mode != "none"

    @property
    def accepts_tokens(self) -> bool:
        return self.mode in ("token", "token+jwt")

    def reload(self) -> None:
        """Re-read the tokens file and the JWT keys file now (SIGHUP); both fail closed."""
        if self.tokens is not None and self.accepts_tokens:
            self.tokens.reload_if_changed(force=True)
        if self.jwt is not None:
            self.jwt.reload_if_changed(force=True)

    def resource_metadata(self, default_resource: str) -> dict[str, object]:
        """The OAuth protected-resource metadata (RFC 9728) of ``/mcp``."""
        jwt = self.jwt
        return {
            "resource": jwt.audience if jwt else default_resource,
            "authorization_servers": [jwt.issuer] if jwt else [],
            "bearer_methods_supported": ["header"],
            "resource_name": "qsysd",
        }

    def _missing(self) -> AuthenticationFailed:
        how = {
            "token": "<token>' (`qsysd token create` makes a token)",
            "jwt": f"<access token>' with a JWT from {self.jwt.issuer if self.jwt else '?'}",
            "token+jwt": "<token>' with an API token (`qsysd token create`) or a JWT from "
            f"{self.jwt.issuer if self.jwt else '?'}",
        }[self.mode]
        return AuthenticationFailed(
            f"authentication required: send 'Authorization: Bearer {how}", error=None
        )

    def authenticate(self, authorization: str | None, door: Door, address: str | None) -> Principal:
        """The principal for an ``Authorization`` header value, or AuthenticationFailed."""
        if self.mode == "none":
            return Principal("local", door=door, address=address)
        if authorization is None:
            raise self._missing()
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise AuthenticationFailed(
                "the Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        if self.jwt is not None and not credentials.startswith(TOKEN_PREFIX):
            access = self.jwt.verify(credentials)
            role = self.jwt.role(access)
            name = access.subject or access.client_id
        elif self.accepts_tokens:
            assert self.tokens is not None
            record = self.tokens.authenticate(credentials)
            name, role = record.name, record.role
        else:
            raise AuthenticationFailed(
                "API tokens (qsysd_...) are not accepted here (auth.mode = 'jwt'): send a JWT "
                "access token"
            )
        return Principal(
            name, door=door, role=role, permissions=self.roles.permissions(role), address=address
        )
