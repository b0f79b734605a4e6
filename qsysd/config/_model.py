"""The configuration's shape: one attrs class per section, with its defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from qsysd.config._state_dir import default_state_dir

__all__ = [
    "REDACTED",
    "AuthConfig",
    "Config",
    "CoreConfig",
    "DaemonConfig",
    "HttpConfig",
    "JwtConfig",
    "LoggingConfig",
    "PluginsConfig",
    "PolicyConfig",
    "RolePolicyConfig",
    "Secret",
    "StateConfig",
    "ValueBound",
]

REDACTED = "***"


@attrs.frozen(repr=False)
class Secret:
    """A secret value: ``reveal()`` gives it; ``repr``/``str`` never do."""

    _value: str = attrs.field(alias="value")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__


@attrs.frozen
class CoreConfig:
    """One Q-SYS Core (or a redundant pair) to connect to."""

    name: str
    host: str
    port: int = 1710
    transport: Literal["tcp", "ws"] = "tcp"
    backup_host: str | None = None
    backup_port: int | None = None
    username: str | None = None
    password: Secret | None = None
    password_file: str | None = None
    ws_path: str = "/qrc-public-api/v0"
    request_timeout: float = 5.0
    keepalive_interval: float = 20.0
    poll_rate: float = 0.1
    reconnect_initial: float = 0.1
    reconnect_max: float = 2.0
    discovery_concurrency: int = 8
    named_controls: list[str] = attrs.Factory(list)


@attrs.frozen
class HttpConfig:
    """The HTTP front end (MCP over Streamable HTTP, REST, events, health, metrics)."""

    enabled: bool = False
    #: One address or a list: ``HOST:PORT``, ``[::1]:PORT``, ``unix:/path``, ``fd://N``.
    listen: str | list[str] = "127.0.0.1:8765"
    allowed_hosts: list[str] = attrs.Factory(list)
    allowed_origins: list[str] = attrs.Factory(list)
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 1_048_576
    read_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_concurrent_requests: int = 256
    max_event_streams: int = 32
    event_history: int = 10_000
    stop_grace: float = 10.0
    #: Listening beyond loopback with ``auth.mode = "none"`` is refused unless this says so.
    allow_unauthenticated_network: bool = False

    def listen_addresses(self) -> list[str]:
        return [self.listen] if isinstance(self.listen, str) else list(self.listen)


#: Asymmetric JWT algorithms accepted unless ``auth.jwt.algorithms`` says otherwise.
DEFAULT_JWT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


@attrs.frozen
class JwtConfig:
    """JWT access tokens from an authorization server, verified offline with its public keys."""

    #: The authorization server: the tokens' ``iss``, listed in the protected-resource metadata.
    issuer: str | None = None
    #: This server's resource URL (``https://qsys.example.com/mcp``): tokens' ``aud`` must name it.
    audience: str | None = None
    #: A JWKS document (``{"keys": [...]}``) or PEM public keys / certificates.
    keys_file: str | None = None
    algorithms: list[str] = attrs.Factory(lambda: list(DEFAULT_JWT_ALGORITHMS))
    #: Seconds of clock skew allowed on ``exp`` and ``nbf``.
    leeway: float = 30.0
    #: The claim naming the caller's role (a string or a one-role list; dots reach into objects).
    roles_claim: str = "roles"


#: How HTTP clients authenticate: API tokens, JWTs, either (by the ``qsysd_`` prefix), or none.
AuthMode = Literal["token", "jwt", "token+jwt", "none"]


@attrs.frozen
class AuthConfig:
    """Who may call: HTTP clients authenticate; stdio runs as a configured principal and role."""

    mode: AuthMode = "token"
    #: The tokens file (hashes only); default ``tokens.json`` in ``state.dir``.
    tokens_file: str | None = None
    #: stdio is trusted as the child of the process that started it: who it acts as.
    stdio_principal: str = "stdio"
    stdio_role: str = "operator"
    #: Custom roles: name -> permissions (``read``, ``write``, ``admin``).
    roles: dict[str, list[str]] = attrs.Factory(dict)
    #: Budgets of the HTTP doors ("N/second", "N/minute", "N/hour" or "off"): per principal,
    #: per client address, and failed authentications per client address.
    rate_limit_reads: str = "3000/minute"
    rate_limit_writes: str = "600/minute"
    rate_limit_address_reads: str = "6000/minute"
    rate_limit_address_writes: str = "1200/minute"
    rate_limit_failed_auth: str = "30/minute"
    #: Where budgets are kept: None in memory; a ``redis://`` URL shares them between instances.
    rate_limit_storage: Secret | None = None
    rate_limit_storage_file: str | None = None
    jwt: JwtConfig = attrs.Factory(JwtConfig)

    @property
    def uses_tokens(self) -> bool:
        return self.mode in ("token", "token+jwt")

    @property
    def uses_jwt(self) -> bool:
        return self.mode in ("jwt", "token+jwt")


@attrs.frozen
class StateConfig:
    """Where state snapshots and the journal live."""

    #: Default: $STATE_DIRECTORY, else the per-user state folder (see default_state_dir).
    dir: str = attrs.field(factory=default_state_dir)
    backend: Literal["file", "redis"] = "file"
    redis_url: Secret | None = None
    redis_url_file: str | None = None
    snapshot_interval: float = 30.0
    journal: bool = True
    journal_retention_days: float = 30.0
    journal_max_rows: int = 1_000_000


@attrs.frozen
class ValueBound:
    """Bounds for the controls whose ``Component.control`` matches ``pattern`` (a glob)."""

    pattern: str
    min: float | None = None
    max: float | None = None


@attrs.frozen
class RolePolicyConfig:
    """What one role may write, on top of the policy every write passes."""

    #: Globs of ``Component.control`` (``core:Component.control`` with a colon) it may write.
    controls: list[str] = attrs.Factory(lambda: ["*"])
    read_only: bool = False


@attrs.frozen
class PolicyConfig:
    """The safety policy applied to every write, whatever the door."""

    read_only: bool = False
    protected: list[str] = attrs.Factory(list)
    bounds: list[ValueBound] = attrs.Factory(list)
    max_gain_db: float | None = 0.0
    max_gain_step_db: float | None = 6.0
    #: Lowering is not what the step limit guards against; it has its own, off by default.
    max_gain_drop_db: float | None = None
    max_gain_step_window_s: float = 10.0
    aliases: dict[str, str] = attrs.Factory(dict)
    #: ``[policy.roles.NAME]``: per-role limits for callers with that role.
    roles: dict[str, RolePolicyConfig] = attrs.Factory(dict)


@attrs.frozen
class PluginsConfig:
    """Where third-party plugins come from besides installed entry points, and their settings."""

    dirs: list[str] = attrs.Factory(list)
    #: ``[plugins.config.NAME]``: each plugin's own table, validated by the schema it declares.
    config: dict[str, dict[str, Any]] = attrs.Factory(dict)


@attrs.frozen
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@attrs.frozen
class DaemonConfig:
    """The process's life: how long start-up waits for the Cores, how long a stop may take."""

    #: Start-up reports ready (systemd ``READY=1``) once every Core is synced, or after this.
    ready_timeout: float = 10.0
    #: After SIGTERM/SIGINT, how long in-flight calls on every door may take to finish.
    stop_grace: float = 10.0
    #: ``serve --stdio`` answers ``initialize`` and ``tools/list`` from a cache in the state
    #: folder before the MCP SDK is loaded (checked against the server's own answers).
    stdio_cache: bool = True


@attrs.frozen
class Config:
    """The whole configuration of one daemon."""

    cores: list[CoreConfig] = attrs.Factory(list)
    http: HttpConfig = attrs.Factory(HttpConfig)
    auth: AuthConfig = attrs.Factory(AuthConfig)
    state: StateConfig = attrs.Factory(StateConfig)
    policy: PolicyConfig = attrs.Factory(PolicyConfig)
    plugins: PluginsConfig = attrs.Factory(PluginsConfig)
    logging: LoggingConfig = attrs.Factory(LoggingConfig)
    daemon: DaemonConfig = attrs.Factory(DaemonConfig)

    def core(self, name: str) -> CoreConfig:
        for core in self.cores:
            if core.name == name:
                return core
        raise KeyError(name)

    def tokens_path(self) -> str:
        """Where the API tokens file is."""
        return self.auth.tokens_file or str(Path(self.state.dir) / "tokens.json")

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        found = [c.password for c in self.cores]
        found += [self.state.redis_url, self.auth.rate_limit_storage]
        return [s.reveal() for s in found if s is not None and s.reveal()]
