"""Secrets: from ``*_file`` keys, the key itself, systemd credentials or /run/secrets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from qsysd.config._model import Config, Secret


def resolve_secret(
    value: Secret | None,
    file_key: str | None,
    credential: str,
    path: str,
    env: Mapping[str, str],
    problems: list[str],
) -> Secret | None:
    """One secret, from the first source that has it; an unusable file adds a problem."""
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


def resolve_secrets(config: Config, env: Mapping[str, str], problems: list[str]) -> Config:
    """``config`` with every secret resolved (Core passwords, the Redis URLs)."""
    cores = [
        attrs.evolve(
            core,
            password=resolve_secret(
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
    redis_url = resolve_secret(
        config.state.redis_url,
        config.state.redis_url_file,
        "redis-url",
        "state.redis_url",
        env,
        problems,
    )
    limits_url = resolve_secret(
        config.auth.rate_limit_storage,
        config.auth.rate_limit_storage_file,
        "rate-limit-storage",
        "auth.rate_limit_storage",
        env,
        problems,
    )
    return attrs.evolve(
        config,
        cores=cores,
        auth=attrs.evolve(config.auth, rate_limit_storage=limits_url),
        state=attrs.evolve(config.state, redis_url=redis_url),
    )
