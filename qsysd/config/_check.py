"""Checks across keys (names, ports, listen addresses, ...), every problem with its path."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

import attrs

from qsysd.config._model import Config

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check(config: Config, problems: list[str]) -> None:
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
        for key in ("request_timeout", "keepalive_interval", "poll_rate", "reconnect_initial"):
            if getattr(core, key) <= 0:
                problems.append(f"{where}.{key}: must be greater than 0")
        if core.keepalive_interval >= 60:
            problems.append(
                f"{where}.keepalive_interval: {core.keepalive_interval} s is not below the "
                "Core's 60 s idle timeout"
            )
        if not core.reconnect_initial <= core.reconnect_max <= 3600:
            problems.append(
                f"{where}.reconnect_max: {core.reconnect_max} s must lie between "
                f"reconnect_initial ({core.reconnect_initial} s) and 3600 s"
            )
        if core.discovery_concurrency < 1:
            problems.append(f"{where}.discovery_concurrency: must be at least 1")
        if core.password is not None and not core.username:
            problems.append(f"{where}.username: required when a password is set")
    _check_http(config, problems)
    _check_auth(config, problems)
    if config.state.backend == "redis" and config.state.redis_url is None:
        problems.append("state.redis_url: required when state.backend is 'redis'")
    if not config.state.dir.strip():
        problems.append("state.dir: must not be empty (leave it out for the default folder)")
    if config.state.snapshot_interval <= 0:
        problems.append("state.snapshot_interval: must be greater than 0")
    for i, bound in enumerate(config.policy.bounds):
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            problems.append(f"policy.bounds[{i}]: min {bound.min} is above max {bound.max}")
    for i, directory in enumerate(config.plugins.dirs):
        if not Path(directory).is_dir():
            problems.append(f"plugins.dirs[{i}]: {directory!r} is not a folder")
    for key in ("max_gain_step_db", "max_gain_drop_db"):
        step = getattr(config.policy, key)
        if step is not None and step <= 0:
            problems.append(f"policy.{key}: must be greater than 0 (leave it out for no limit)")
    if not 0 <= config.policy.max_gain_step_window_s <= 86_400:
        problems.append("policy.max_gain_step_window_s: must be 0 (off) to 86400 seconds")
    if not 0 <= config.daemon.ready_timeout <= 3600:
        problems.append("daemon.ready_timeout: must be 0 (ready at once) to 3600 seconds")
    if not 0 < config.daemon.stop_grace <= 3600:
        problems.append("daemon.stop_grace: must be greater than 0 and at most 3600 seconds")


UNAUTHENTICATED_NETWORK = (
    "with auth.mode = 'none' anyone who reaches the port controls the Cores, so qsysd serves "
    "HTTP only on 127.0.0.1, ::1, localhost or a unix socket: set auth.mode = 'token' (the "
    "default), 'jwt' or 'token+jwt', or "
    "http.allow_unauthenticated_network = true if another layer authenticates"
)


def network_allowed(config: Config) -> bool:
    """Whether the HTTP front end may listen beyond loopback."""
    return config.auth.mode != "none" or config.http.allow_unauthenticated_network


def _check_auth(config: Config, problems: list[str]) -> None:
    from qsysd.plugins import PERMISSIONS

    auth = config.auth
    builtin = ("viewer", "operator", "admin")
    for name, permissions in auth.roles.items():
        if name in builtin:
            problems.append(f"auth.roles.{name}: a built-in role cannot be redefined")
        elif not _NAME.match(name):
            problems.append(f"auth.roles: {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        unknown = [p for p in permissions if p not in PERMISSIONS]
        if unknown:
            problems.append(
                f"auth.roles.{name}: unknown permission(s) {', '.join(map(repr, unknown))}; "
                f"use {', '.join(PERMISSIONS)}"
            )
    if auth.stdio_role not in builtin and auth.stdio_role not in auth.roles:
        problems.append(f"auth.stdio_role: unknown role {auth.stdio_role!r}")
    from qsysd.access._limits import parse_rate

    for key in ("rate_limit_reads", "rate_limit_writes", "rate_limit_address_reads",
                "rate_limit_address_writes", "rate_limit_failed_auth"):  # fmt: skip
        try:
            parse_rate(getattr(auth, key))
        except ValueError as exc:
            problems.append(f"auth.{key}: {exc}")
    if auth.rate_limit_storage is not None:
        from qsysd.access._limits import REDIS_SCHEMES

        if not auth.rate_limit_storage.reveal().startswith(REDIS_SCHEMES):
            problems.append(
                "auth.rate_limit_storage: must be a redis://, rediss:// or redis+unix:// URL "
                "(leave it out to keep budgets in memory)"
            )
    if not auth.stdio_principal.strip():
        problems.append("auth.stdio_principal: must not be empty")
    _check_jwt(config, problems)
    known = {*builtin, *auth.roles}
    for name, role in config.policy.roles.items():
        where = f"policy.roles.{name}"
        if name not in known:
            problems.append(f"{where}: unknown role {name!r}; roles: {', '.join(sorted(known))}")
        if not role.controls:
            problems.append(f"{where}.controls: empty; give globs like 'Lobby*' ('*': any)")
        for pattern in role.controls:
            if not pattern.strip():
                problems.append(f"{where}.controls: a pattern must not be empty")


def _check_jwt(config: Config, problems: list[str]) -> None:
    from qsysd.config._model import JwtConfig

    jwt = config.auth.jwt
    if not config.auth.uses_jwt:
        if jwt != JwtConfig():
            problems.append(
                f"auth.jwt: set, but auth.mode is {config.auth.mode!r}, which accepts no JWT; "
                "use auth.mode = 'jwt' or 'token+jwt', or remove [auth.jwt]"
            )
        return
    from qsysd.access._jwt import ASYMMETRIC_ALGORITHMS, load_keys

    for key, example in (("issuer", "https://login.example.com/realms/venue"),
                         ("audience", "https://qsys.example.com/mcp")):  # fmt: skip
        value = getattr(jwt, key)
        if not value:
            problems.append(f"auth.jwt.{key}: required with auth.mode {config.auth.mode!r} "
                            f"(for example {example!r})")  # fmt: skip
        elif not value.startswith(("https://", "http://")):
            problems.append(f"auth.jwt.{key}: {value[:80]!r} must be an http(s) URL")
    if not jwt.keys_file:
        problems.append(
            f"auth.jwt.keys_file: required with auth.mode {config.auth.mode!r}: the "
            "authorization server's public keys, as a JWKS file or PEM"
        )
    else:
        try:
            keys = load_keys(jwt.keys_file)
        except ValueError as exc:
            problems.append(f"auth.jwt.keys_file: {exc}")
        else:
            fitting = [a for a in jwt.algorithms if a in ASYMMETRIC_ALGORITHMS]
            if fitting and not any(k.fits(a) for k in keys for a in fitting):
                problems.append(
                    "auth.jwt.keys_file: no key fits any of auth.jwt.algorithms "
                    f"({', '.join(jwt.algorithms)})"
                )
    if not jwt.algorithms:
        problems.append("auth.jwt.algorithms: must name at least one algorithm")
    for alg in jwt.algorithms:
        if alg not in ASYMMETRIC_ALGORITHMS:
            why = (
                "an unsigned token proves nothing"
                if alg.lower() == "none"
                else "a shared secret would let this server mint tokens too"
                if alg.upper().startswith("HS")
                else "it is not a JWT signature algorithm"
            )
            problems.append(
                f"auth.jwt.algorithms: {alg[:20]!r} is refused ({why}); use "
                f"{', '.join(ASYMMETRIC_ALGORITHMS)}"
            )
    if len(set(jwt.algorithms)) != len(jwt.algorithms):
        problems.append("auth.jwt.algorithms: an algorithm is listed twice")
    if not 0 <= jwt.leeway <= 300:
        problems.append("auth.jwt.leeway: must be 0 to 300 seconds (a small clock skew)")
    if not jwt.roles_claim.strip() or any(not p for p in jwt.roles_claim.split(".")):
        problems.append(
            f"auth.jwt.roles_claim: {jwt.roles_claim!r} is not a claim name ('roles', "
            "'realm_access.roles')"
        )


def _check_http(config: Config, problems: list[str]) -> None:
    http = config.http
    addresses = http.listen_addresses()
    for i, listen in enumerate(addresses):
        where = "http.listen" if isinstance(http.listen, str) else f"http.listen[{i}]"
        try:
            address = parse_listen_address(listen)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if address.kind == "tcp" and not is_loopback(address.host) and not network_allowed(config):
            problems.append(f"{where}: {listen!r} is beyond loopback; {UNAUTHENTICATED_NETWORK}")
    if (http.tls_cert is None) != (http.tls_key is None):
        problems.append("http.tls_cert, http.tls_key: give both (a certificate and its key)")
    for key in ("tls_cert", "tls_key"):
        path = getattr(http, key)
        if path is not None and not Path(path).is_file():
            problems.append(f"http.{key}: {path!r} is not a readable file")
    for key in ("max_body_bytes", "max_concurrent_requests", "max_event_streams"):
        if getattr(http, key) < 1:
            problems.append(f"http.{key}: must be at least 1")
    if http.event_history < 0:
        problems.append("http.event_history: must be 0 (no resume) or more")
    for key in ("read_timeout", "keep_alive_timeout", "stop_grace"):
        if not 0 < getattr(http, key) <= 3600:
            problems.append(f"http.{key}: must be greater than 0 and at most 3600 seconds")


@attrs.frozen
class ListenAddress:
    """Where the HTTP front end listens: ``tcp`` (host, port), ``unix`` (path) or ``fd`` (n)."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def bind(self) -> str:
        """The address in Hypercorn's ``bind`` syntax."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen_address(listen: str) -> ListenAddress:
    """``HOST:PORT``, ``[::1]:PORT``, ``unix:/path`` or ``fd://N``, checked."""
    if listen.startswith("unix:"):
        path = listen[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"{listen!r}: a unix socket needs an absolute path (unix:/run/...)")
        return ListenAddress("unix", path=path)
    if listen.startswith("fd://"):
        number = listen[len("fd://") :]
        if not number.isdigit() or int(number) < 3:
            raise ValueError(f"{listen!r}: fd:// takes an inherited descriptor number >= 3")
        return ListenAddress("fd", fd=int(number))
    host, port = parse_listen(listen)
    return ListenAddress("tcp", host=host, port=port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_warnings(config: Config) -> list[str]:
    """What is valid but probably not meant: said by ``config check`` and logged at start."""
    found = []
    for i, core in enumerate(config.cores):
        if core.username and core.password is None:
            found.append(
                f"cores[{i}].username: {core.username!r} is set but no password (PIN) was found "
                f"(password, password_file, $CREDENTIALS_DIRECTORY/core-{core.name}-password "
                f"or /run/secrets/core-{core.name}-password): Logon will be sent with an empty "
                "PIN, which a Core with access control refuses"
            )
    if (
        config.http.enabled
        and config.auth.mode == "token"
        and not Path(config.tokens_path()).exists()
    ):
        found.append(
            f"auth.tokens_file: {config.tokens_path()!r} does not exist yet, so every HTTP "
            "request but /health will be refused (401): create a token with `qsysd token "
            "create --name NAME --role ROLE`"
        )
    return found


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
