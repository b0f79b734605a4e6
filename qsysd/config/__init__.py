"""Configuration: a TOML file, overridden by environment variables, with secrets from files.

Sources, lowest precedence first:

1. defaults (the attrs classes below);
2. the TOML file (``--config PATH`` or ``$QSYSD_CONFIG``);
3. a ``.env`` file in the working directory, only when ``QSYSD_ENV=development``;
4. environment variables ``QSYSD_<SECTION>__<KEY>`` (``QSYSD_HTTP__LISTEN``,
   ``QSYSD_CORES__0__PORT``); values are read as TOML values when they parse as one
   (``1711``, ``true``, ``["a", "b"]``), otherwise as plain strings.

A secret (a Core's password, a Redis URL) comes from, in order: the key's
``<key>_file`` companion, the key itself, ``$CREDENTIALS_DIRECTORY/<credential>`` (systemd
``LoadCredential=``), then ``/run/secrets/<credential>`` (Docker, Kubernetes). Secrets are
:class:`Secret` objects whose repr is redacted; a whole number is taken as its digits (Q-SYS
PINs), an environment variable's text as it is, and no error message ever shows a secret.

Every problem is collected and reported at once, each with its path, in a
:class:`~qsysd.errors.ConfigError`.
"""

from qsysd.config._check import (
    ListenAddress as ListenAddress,
    config_warnings as config_warnings,
    is_loopback as is_loopback,
    network_allowed as network_allowed,
    parse_listen as parse_listen,
    parse_listen_address as parse_listen_address,
)
from qsysd.config._load import load_config as load_config, redacted as redacted
from qsysd.config._model import (
    AuthConfig as AuthConfig,
    Config as Config,
    CoreConfig as CoreConfig,
    DaemonConfig as DaemonConfig,
    HttpConfig as HttpConfig,
    JwtConfig as JwtConfig,
    LoggingConfig as LoggingConfig,
    PluginsConfig as PluginsConfig,
    PolicyConfig as PolicyConfig,
    RolePolicyConfig as RolePolicyConfig,
    Secret as Secret,
    StateConfig as StateConfig,
    ValueBound as ValueBound,
)
from qsysd.config._state_dir import (
    default_state_dir as default_state_dir,
    state_dir_problem as state_dir_problem,
    uses_state_dir as uses_state_dir,
)

__all__ = [
    "AuthConfig",
    "Config",
    "CoreConfig",
    "DaemonConfig",
    "HttpConfig",
    "JwtConfig",
    "ListenAddress",
    "LoggingConfig",
    "PluginsConfig",
    "PolicyConfig",
    "RolePolicyConfig",
    "Secret",
    "StateConfig",
    "ValueBound",
    "config_warnings",
    "default_state_dir",
    "is_loopback",
    "load_config",
    "network_allowed",
    "parse_listen",
    "parse_listen_address",
    "redacted",
    "state_dir_problem",
    "uses_state_dir",
]
