"""Checks across keys (names, ports, listen addresses, ...), every problem with its path."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

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
