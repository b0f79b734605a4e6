"""Configuration: a TOML file, overridden by environment variables, with secrets from files.

Sources, lowest precedence first:

1. defaults (the attrs classes below);
2. the TOML file (``--config PATH`` or ``$QSYSD_CONFIG``);
3. a ``.env`` file in the working directory, only when ``QSYSD_ENV=development``;
4. environment variables ``QSYSD_<SECTION>__<KEY>`` (``QSYSD_HTTP__LISTEN``,
   ``QSYSD_CORES__0__PORT``); values are read as TOML values when they parse as one
   (``1711``, ``true``, ``["a", "b"]``), otherwise as plain strings.

A secret (a Core's password, the auth tokens, a Redis URL) comes from, in order: the key's
``<key>_file`` companion, the key itself, ``$CREDENTIALS_DIRECTORY/<credential>`` (systemd
``LoadCredential=``), then ``/run/secrets/<credential>`` (Docker, Kubernetes). Secrets are
:class:`Secret` objects whose repr is redacted.

Every problem is collected and reported at once, each with its path, in a
:class:`~qsysd.errors.ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from qsysd.errors import ConfigError

__all__ = [
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
    "load_config",
    "redacted",
]

ENV_PREFIX = "QSYSD_"
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


def _strict_converter() -> cattrs.Converter:
    """A converter that rejects unknown keys and never coerces between types."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def exact(kind: type, name: str) -> Any:
        def hook(value: Any, _: Any) -> Any:
            if isinstance(value, bool) and kind is not bool:
                raise TypeError(f"expected {name}, got a boolean")
            if not isinstance(value, kind):
                raise TypeError(f"expected {name}, got {_describe(value)}")
            return value

        return hook

    conv.register_structure_hook(str, exact(str, "a string"))
    conv.register_structure_hook(bool, exact(bool, "true or false"))
    conv.register_structure_hook(int, exact(int, "an integer"))

    def number(value: Any, _: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {_describe(value)}")
        return float(value)

    conv.register_structure_hook(float, number)

    def secret(value: Any, _: Any) -> Secret:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {_describe(value)}")
        return Secret(value)

    conv.register_structure_hook(Secret, secret)
    conv.register_unstructure_hook(Secret, lambda s: REDACTED)
    return conv


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


_converter = _strict_converter()


def _merge_env(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """Apply ``QSYSD_<SECTION>__<KEY>`` variables onto the raw config mapping."""
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        node: Any = data
        path = ""
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if isinstance(node, list):
                    index = int(part)
                    while len(node) <= index:
                        node.append({})
                    if last:
                        node[index] = _parse_env_value(raw)
                    else:
                        node = node[index]
                else:
                    if last:
                        node[part] = _parse_env_value(raw)
                    else:
                        default: Any = [] if part == "cores" else {}
                        node = node.setdefault(part, default)
                path = f"{path}.{part}" if path else part
        except (ValueError, TypeError, AttributeError):
            problems.append(f"{var}: cannot apply to the configuration at {path or '<root>'}")


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _resolve_secret(
    value: Secret | None,
    file_key: str | None,
    credential: str,
    path: str,
    env: Mapping[str, str],
    problems: list[str],
) -> Secret | None:
    candidates: list[Path] = []
    if file_key:
        candidates.append(Path(file_key))
    elif value is not None:
        return value
    else:
        creds = env.get("CREDENTIALS_DIRECTORY")
        if creds:
            candidates.append(Path(creds) / credential)
        candidates.append(Path("/run/secrets") / credential)
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if file_key:
                problems.append(f"{path}_file: no such file {str(candidate)!r}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read secret file {str(candidate)!r}: {exc}")
            continue
        if not text:
            problems.append(f"{path}: secret file {str(candidate)!r} is empty")
            continue
        return Secret(text)
    return None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check(config: Config, problems: list[str]) -> None:
    names: set[str] = set()
    for i, core in enumerate(config.cores):
        where = f"cores[{i}]"
        if not _NAME.match(core.name):
            problems.append(
                f"{where}.name: {core.name!r} must be 1-64 letters, digits, '_', '.' or '-'"
            )
        if core.name in names:
            problems.append(f"{where}.name: duplicate Core name {core.name!r}")
        names.add(core.name)
        if not core.host.strip():
            problems.append(f"{where}.host: must not be empty")
        for key in ("port", "backup_port"):
            port = getattr(core, key)
            if port is not None and not 1 <= port <= 65535:
                problems.append(f"{where}.{key}: {port} is not a TCP port (1-65535)")
        for key in ("request_timeout", "keepalive_interval", "poll_rate"):
            if getattr(core, key) <= 0:
                problems.append(f"{where}.{key}: must be greater than 0")
        if core.keepalive_interval >= 60:
            problems.append(
                f"{where}.keepalive_interval: {core.keepalive_interval} s is not below the "
                "Core's 60 s idle timeout"
            )
        if core.discovery_concurrency < 1:
            problems.append(f"{where}.discovery_concurrency: must be at least 1")
        if core.password is not None and not core.username:
            problems.append(f"{where}.username: required when a password is set")
    try:
        parse_listen(config.http.listen)
    except ValueError as exc:
        problems.append(f"http.listen: {exc}")
    if config.auth.mode == "token" and config.auth.tokens is None:
        problems.append("auth.tokens: required when auth.mode is 'token' (or auth.tokens_file)")
    if config.state.backend == "redis" and config.state.redis_url is None:
        problems.append("state.redis_url: required when state.backend is 'redis'")
    if config.state.snapshot_interval <= 0:
        problems.append("state.snapshot_interval: must be greater than 0")
    for i, bound in enumerate(config.policy.bounds):
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            problems.append(f"policy.bounds[{i}]: min {bound.min} is above max {bound.max}")
    for i, directory in enumerate(config.plugins.dirs):
        if not Path(directory).is_dir():
            problems.append(f"plugins.dirs[{i}]: {directory!r} is not a folder")
    step = config.policy.max_gain_step_db
    if step is not None and step <= 0:
        problems.append("policy.max_gain_step_db: must be greater than 0")
    if not 0 <= config.policy.max_gain_step_window_s <= 86_400:
        problems.append("policy.max_gain_step_window_s: must be 0 (off) to 86400 seconds")


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8765`` for IPv6) and check both parts."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{listen!r} is not HOST:PORT")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{listen!r}: port must be a number 0-65535")
    if not re.match(r"^[A-Za-z0-9.-]+$", host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{listen!r}: {host!r} is not a host name or address") from None
    return host, int(port_text)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Read, merge, validate and resolve the configuration; raise ConfigError with every problem."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    if path is None:
        path = env.get("QSYSD_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError([f"config file {str(path)!r} does not exist"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"config file {str(path)!r} cannot be read: {exc}"]) from None
    if env.get("QSYSD_ENV") == "development":
        dotenv = (cwd or Path.cwd()) / ".env"
        if dotenv.is_file():
            env = {**_read_dotenv(dotenv), **env}
    _merge_env(data, env, problems)
    try:
        config = _converter.structure(data, Config)
    except ClassValidationError as exc:
        problems.extend(_format_cattrs(exc))
        raise ConfigError(problems) from None
    config = _resolve_secrets(config, env, problems)
    _check(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _format_cattrs(exc: ClassValidationError) -> list[str]:
    out = []
    for message in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        # "expected int @ $.cores[0].port" -> "cores[0].port: expected int"
        text, _, where = message.rpartition(" @ ")
        where = where.removeprefix("$").lstrip(".") or "<root>"
        out.append(f"{where}: {text or message}")
    return out


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected"):
        return str(exc)  # our strict hooks already say what they expected
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown key(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return "required key is missing"
    if getattr(type_, "__origin__", None) is Literal:
        allowed = ", ".join(repr(a) for a in type_.__args__)
        return f"must be one of {allowed}"
    return cattrs.v.format_exception(exc, type_)


def _resolve_secrets(config: Config, env: Mapping[str, str], problems: list[str]) -> Config:
    cores = [
        attrs.evolve(
            core,
            password=_resolve_secret(
                core.password,
                core.password_file,
                f"core-{core.name}-password",
                f"cores[{i}].password",
                env,
                problems,
            ),
        )
        for i, core in enumerate(config.cores)
    ]
    tokens = _resolve_secret(
        config.auth.tokens, config.auth.tokens_file, "auth-tokens", "auth.tokens", env, problems
    )
    redis_url = _resolve_secret(
        config.state.redis_url,
        config.state.redis_url_file,
        "redis-url",
        "state.redis_url",
        env,
        problems,
    )
    return attrs.evolve(
        config,
        cores=cores,
        auth=attrs.evolve(config.auth, tokens=tokens),
        state=attrs.evolve(config.state, redis_url=redis_url),
    )


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by ``***``."""
    data: dict[str, Any] = _converter.unstructure(config)
    return data
