"""The configuration's shape: one attrs class per section, with its defaults."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "REDACTED",
    "AuthConfig",
    "Config",
    "CoreConfig",
    "HttpConfig",
    "LoggingConfig",
    "PluginsConfig",
    "PolicyConfig",
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
    """The HTTP front end (MCP over Streamable HTTP, REST, health, metrics)."""

    enabled: bool = False
    listen: str = "127.0.0.1:8765"
    allowed_hosts: list[str] = attrs.Factory(list)
    allowed_origins: list[str] = attrs.Factory(list)


@attrs.frozen
class AuthConfig:
    """Authentication of HTTP clients; stdio is trusted (its parent process started it)."""

    mode: Literal["none", "token"] = "none"
    tokens: Secret | None = None
    tokens_file: str | None = None


@attrs.frozen
class StateConfig:
    """Where state snapshots and the journal live."""

    dir: str = "./qsysd-state"
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
class PolicyConfig:
    """The safety policy applied to every write, whatever the door."""

    read_only: bool = False
    protected: list[str] = attrs.Factory(list)
    bounds: list[ValueBound] = attrs.Factory(list)
    max_gain_db: float | None = 0.0
    max_gain_step_db: float | None = 6.0
    max_gain_step_window_s: float = 10.0
    aliases: dict[str, str] = attrs.Factory(dict)


@attrs.frozen
class PluginsConfig:
    """Where third-party tool plugins come from besides installed entry points."""

    dirs: list[str] = attrs.Factory(list)


@attrs.frozen
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


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

    def core(self, name: str) -> CoreConfig:
        for core in self.cores:
            if core.name == name:
                return core
        raise KeyError(name)

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        found = [c.password for c in self.cores] + [self.auth.tokens, self.state.redis_url]
        return [s.reveal() for s in found if s is not None and s.reveal()]
