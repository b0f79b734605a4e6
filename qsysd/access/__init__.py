"""Access: who is calling, and the one call path every door (stdio, /mcp, REST, CLI) uses.

A door turns its bytes into a :class:`Principal`, a tool name and arguments, and the answer
back into its bytes; :class:`CallPath` does everything between (authorization, validation,
the tool, logging and metrics), the same way for every door.
"""

from typing import TYPE_CHECKING, Any

from qsysd.access._authn import Authenticator as Authenticator
from qsysd.access._calls import (
    CallPath as CallPath,
    CallStatistics as CallStatistics,
)
from qsysd.access._limits import RateLimits as RateLimits
from qsysd.access._principal import (
    DOORS as DOORS,
    Door as Door,
    Principal as Principal,
)
from qsysd.access._roles import BUILTIN_ROLES as BUILTIN_ROLES, Roles as Roles
from qsysd.access._tokens import (
    TOKEN_PREFIX as TOKEN_PREFIX,
    TokenRecord as TokenRecord,
    TokenStore as TokenStore,
)

if TYPE_CHECKING:
    from qsysd.access._jwt import JwtVerifier as JwtVerifier

__all__ = [
    "BUILTIN_ROLES",
    "DOORS",
    "TOKEN_PREFIX",
    "Authenticator",
    "CallPath",
    "CallStatistics",
    "Door",
    "JwtVerifier",
    "Principal",
    "RateLimits",
    "Roles",
    "TokenRecord",
    "TokenStore",
]


def __getattr__(name: str) -> Any:
    # PyJWT and cryptography load only where a configuration verifies JWTs.
    if name == "JwtVerifier":
        from qsysd.access._jwt import JwtVerifier

        return JwtVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
