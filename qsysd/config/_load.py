"""Reading and merging the sources: TOML, .env (development), environment variables."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from qsysd.config._check import check
from qsysd.config._model import (
    REDACTED,
    AuthConfig,
    Config,
    CoreConfig,
    Secret,
    StateConfig,
)
from qsysd.config._secrets import resolve_secrets
from qsysd.config._state_dir import default_state_dir
from qsysd.errors import ConfigError

ENV_PREFIX = "QSYSD_"


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
        # Q-SYS PINs are numbers, so `password = 4711` is natural. The value is never shown:
        # a wrong-typed secret is still a secret.
        if isinstance(value, int) and not isinstance(value, bool):
            return Secret(str(value))
        if not isinstance(value, str):
            raise TypeError(
                f"expected a string or a whole number (a PIN), got {_kind(value)} "
                "(the value is not shown: it is a secret)"
            )
        return Secret(value)

    conv.register_structure_hook(Secret, secret)
    conv.register_unstructure_hook(Secret, lambda s: REDACTED)

    def one_or_many(value: Any, _: Any) -> str | list[str]:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return list(value)
        raise TypeError(f"expected a string or a non-empty list of strings, got {_describe(value)}")

    conv.register_structure_hook(str | list[str], one_or_many)
    return conv


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {float: "a decimal number", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


_converter = _strict_converter()

#: Keys holding a secret: from the environment their text is taken as it is (a PIN ``0815``
#: or ``+49`` must not be read as a TOML number).
_SECRET_KEYS = frozenset(
    field.name
    for section in (CoreConfig, AuthConfig, StateConfig)
    for field in attrs.fields(section)
    if field.type in (Secret, Secret | None, "Secret | None")
)


#: Highest Core count QSYSD_CORES__<N>__* may reach: N builds a list of N entries.
MAX_ENV_CORES = 256


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
                    if not 0 <= index < MAX_ENV_CORES:
                        problems.append(
                            f"{var}: Core index {part} is out of range: environment variables "
                            f"can set Cores 0 to {MAX_ENV_CORES - 1} (use the config file "
                            "for more)"
                        )
                        break
                    while len(node) <= index:
                        node.append({})
                    if last:
                        node[index] = _env_value(part, raw)
                    else:
                        node = node[index]
                else:
                    if last:
                        node[part] = _env_value(part, raw)
                    else:
                        default: Any = [] if part == "cores" else {}
                        node = node.setdefault(part, default)
                path = f"{path}.{part}" if path else part
        except (ValueError, TypeError, AttributeError):
            problems.append(f"{var}: cannot apply to the configuration at {path or '<root>'}")


def _env_value(key: str, raw: str) -> Any:
    return raw if key in _SECRET_KEYS else _parse_env_value(raw)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


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
    state = data.setdefault("state", {})
    if isinstance(state, dict):  # anything else is reported by the converter
        state.setdefault("dir", default_state_dir(env))
    try:
        config = _converter.structure(data, Config)
    except ClassValidationError as exc:
        problems.extend(_format_cattrs(exc))
        raise ConfigError(problems) from None
    config = resolve_secrets(config, env, problems)
    check(config, problems)
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


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by ``***``."""
    data: dict[str, Any] = _converter.unstructure(config)
    return data
