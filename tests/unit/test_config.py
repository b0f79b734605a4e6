"""Configuration: strict types, every problem at once, env overrides, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsysd.config import (
    Secret,
    config_warnings,
    default_state_dir,
    load_config,
    redacted,
    state_dir_problem,
)
from qsysd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qsysd.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, env={})
    assert config.cores == []
    assert config.http.listen == "127.0.0.1:8765"
    assert config.policy.max_gain_db == 0.0


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "examples" / "qsysd.toml"
    config = load_config(example, env={})
    assert config.core("main").backup_host == "192.0.2.11"


def test_broken_config_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[cores]]
name = "main"
host = "core"
port = "abc"
colour = "red"

[[cores]]
host = "core2"
transport = "udp"

[logging]
level = "loud"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = info.value.problems
    assert "cores[0].port: expected an integer, got str 'abc'" in problems
    assert "cores[0]: unknown key(s): colour" in problems
    assert "cores[1].name: required key is missing" in problems
    assert "cores[1].transport: must be one of 'tcp', 'ws'" in problems
    assert "logging.level: must be one of 'debug', 'info', 'warning', 'error'" in problems
    assert len(problems) == 5


def test_semantic_problems_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[cores]]
name = "a"
host = "h"
port = 70000
keepalive_interval = 90.0

[[cores]]
name = "a"
host = "h2"

[http]
listen = "nowhere"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "cores[0].port: 70000 is not a TCP port" in text
    assert "cores[0].keepalive_interval: 90.0 s is not below the Core's 60 s idle timeout" in text
    assert "cores[1].name: duplicate Core name 'a'" in text
    assert "http.listen: 'nowhere' is not HOST:PORT" in text


def test_integers_are_not_accepted_for_strings(tmp_path: Path) -> None:
    path = write(tmp_path, '[[cores]]\nname = 5\nhost = "h"\n')
    with pytest.raises(ConfigError, match=r"cores\[0\]\.name: expected a string, got int 5"):
        load_config(path, env={})


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[[cores]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_environment_overrides_file_with_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, '[[cores]]\nname = "main"\nhost = "a"\n')
    config = load_config(
        path,
        env={
            "QSYSD_CORES__0__HOST": "b.example",
            "QSYSD_CORES__0__PORT": "1711",
            "QSYSD_HTTP__ENABLED": "true",
            "QSYSD_POLICY__PROTECTED": '["X.*", "Y.gain"]',
            "QSYSD_CONFIG_UNRELATED": "ignored",
        },
    )
    assert config.core("main").host == "b.example"
    assert config.core("main").port == 1711
    assert config.http.enabled is True
    assert config.policy.protected == ["X.*", "Y.gain"]


@pytest.mark.parametrize("index", ["99999999", "256", "-1"])
def test_an_environment_core_index_out_of_range_is_refused_without_building_it(
    tmp_path: Path, index: str
) -> None:
    path = write(tmp_path, '[[cores]]\nname = "main"\nhost = "a"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={f"QSYSD_CORES__{index}__HOST": "b"})
    assert f"QSYSD_CORES__{index}__HOST: Core index {index} is out of range" in str(info.value)
    assert "Cores 0 to 255" in str(info.value)


def test_the_highest_environment_core_index_is_accepted(tmp_path: Path) -> None:
    env = {"QSYSD_CORES__0__NAME": "a", "QSYSD_CORES__0__HOST": "a"}
    env |= {f"QSYSD_CORES__{i}__NAME": f"c{i}" for i in range(1, 256)}
    env |= {f"QSYSD_CORES__{i}__HOST": "h" for i in range(1, 256)}
    assert len(load_config(env=env, cwd=tmp_path).cores) == 256


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[logging]\nlevel = "debug"\n')
    assert load_config(None, env={"QSYSD_CONFIG": str(path)}).logging.level == "debug"


def test_dotenv_is_read_only_in_development(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("QSYSD_LOGGING__LEVEL=warning\n")
    production = load_config(None, env={}, cwd=tmp_path)
    development = load_config(None, env={"QSYSD_ENV": "development"}, cwd=tmp_path)
    assert production.logging.level == "info"
    assert development.logging.level == "warning"


def test_real_environment_beats_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("QSYSD_LOGGING__LEVEL=warning\n")
    env = {"QSYSD_ENV": "development", "QSYSD_LOGGING__LEVEL": "error"}
    assert load_config(None, env=env, cwd=tmp_path).logging.level == "error"


def test_password_from_file_key(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pin\n")
    path = write(
        tmp_path,
        f'[[cores]]\nname = "main"\nhost = "h"\nusername = "u"\npassword_file = "{secret}"\n',
    )
    core = load_config(path, env={}).core("main")
    assert isinstance(core.password, Secret)
    assert core.password.reveal() == "s3cret-pin"
    assert "s3cret-pin" not in repr(core)


def test_password_from_systemd_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "core-main-password").write_text("from-systemd")
    path = write(tmp_path, '[[cores]]\nname = "main"\nhost = "h"\nusername = "u"\n')
    core = load_config(path, env={"CREDENTIALS_DIRECTORY": str(creds)}).core("main")
    assert core.password is not None
    assert core.password.reveal() == "from-systemd"


def test_missing_secret_file_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[cores]]\nname = "m"\nhost = "h"\nusername = "u"\npassword_file = "/nope"\n'
    )
    with pytest.raises(ConfigError, match=r"cores\[0\]\.password_file: no such file '/nope'"):
        load_config(path, env={})


def test_authentication_is_on_by_default_and_none_stays_on_loopback(tmp_path: Path) -> None:
    wide = {"QSYSD_HTTP__LISTEN": "0.0.0.0:8765"}
    config = load_config(None, env=wide)
    assert config.auth.mode == "token"
    assert config.tokens_path() == str(Path(config.state.dir) / "tokens.json")
    none = {**wide, "QSYSD_AUTH__MODE": "none"}
    with pytest.raises(ConfigError, match=r"beyond loopback; with auth.mode = 'none'"):
        load_config(None, env=none)
    opened = load_config(None, env={**none, "QSYSD_HTTP__ALLOW_UNAUTHENTICATED_NETWORK": "true"})
    assert opened.auth.mode == "none"
    with pytest.raises(ConfigError, match=r"auth.mode: must be one of 'token', 'jwt'"):
        load_config(None, env={"QSYSD_AUTH__MODE": "tokens"})


def test_roles_and_the_stdio_role_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth]\nstdio_role = "nobody"\nstdio_principal = " "\n'
        '[auth.roles]\npanel = ["read", "fly"]\nadmin = ["read"]\n"bad name" = []\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    problems = "\n".join(caught.value.problems)
    assert "auth.roles.panel: unknown permission(s) 'fly'" in problems
    assert "auth.roles.admin: a built-in role cannot be redefined" in problems
    assert "auth.roles: 'bad name' must be" in problems
    assert "auth.stdio_role: unknown role 'nobody'" in problems
    assert "auth.stdio_principal: must not be empty" in problems
    good = write(tmp_path, '[auth]\nstdio_role = "panel"\n[auth.roles]\npanel = ["read"]\n')
    assert load_config(good, env={}).auth.roles == {"panel": ["read"]}


def test_http_listen_takes_one_address_or_a_list_and_refuses_beyond_loopback() -> None:
    one = load_config(None, env={"QSYSD_HTTP__LISTEN": "[::1]:8080"})
    assert one.http.listen_addresses() == ["[::1]:8080"]
    many = load_config(
        None, env={"QSYSD_HTTP__LISTEN": '["127.0.0.1:0", "unix:/run/q.sock", "fd://3"]'}
    )
    assert many.http.listen_addresses() == ["127.0.0.1:0", "unix:/run/q.sock", "fd://3"]
    with pytest.raises(ConfigError) as caught:
        listen = '["0.0.0.0:8765", "unix:run", "fd://1"]'
        load_config(None, env={"QSYSD_AUTH__MODE": "none", "QSYSD_HTTP__LISTEN": listen})
    problems = caught.value.problems
    assert any("http.listen[0]" in p and "beyond loopback" in p for p in problems)
    assert any("http.listen[1]" in p and "absolute path" in p for p in problems)
    assert any("http.listen[2]" in p and ">= 3" in p for p in problems)
    with pytest.raises(ConfigError, match="a string or a non-empty list"):
        load_config(None, env={"QSYSD_HTTP__LISTEN": "[]"})


def test_redacted_view_hides_every_secret(tmp_path: Path) -> None:
    config = load_config(
        None,
        env={
            "QSYSD_CORES__0__NAME": "m",
            "QSYSD_CORES__0__HOST": "h",
            "QSYSD_CORES__0__USERNAME": "u",
            "QSYSD_CORES__0__PASSWORD": "pin-1234",
            "QSYSD_STATE__REDIS_URL": "redis://:hunter2@db",
        },
    )
    text = repr(redacted(config))
    assert "pin-1234" not in text and "hunter2" not in text
    assert redacted(config)["cores"][0]["password"] == "***"
    assert sorted(config.secrets()) == ["pin-1234", "redis://:hunter2@db"]


def test_rate_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"auth.rate_limit_writes: 'lots' is not a rate like"):
        load_config(None, env={"QSYSD_AUTH__RATE_LIMIT_WRITES": "lots"})
    config = load_config(None, env={"QSYSD_AUTH__RATE_LIMIT_READS": "off"})
    assert config.auth.rate_limit_reads == "off"


CORE = '[[cores]]\nname = "main"\nhost = "h"\nusername = "operator"\n'


def test_numeric_pin_from_toml_is_its_digits(tmp_path: Path) -> None:
    path = write(tmp_path, CORE + "password = 4711\n")
    password = load_config(path, env={}).core("main").password
    assert password is not None and password.reveal() == "4711"


@pytest.mark.parametrize("pin", ["4711", "0815", "+49", "1e3", "true"])
def test_pin_from_the_environment_is_taken_as_written(tmp_path: Path, pin: str) -> None:
    path = write(tmp_path, CORE)
    config = load_config(path, env={"QSYSD_CORES__0__PASSWORD": pin})
    password = config.core("main").password
    assert password is not None and password.reveal() == pin


@pytest.mark.parametrize(
    ("toml", "kind"),
    [("4711.5", "a decimal number"), ("[4711]", "a list"), ("{ pin = 4711 }", "a table")],
)
def test_a_wrong_typed_secret_is_refused_without_showing_it(
    tmp_path: Path, toml: str, kind: str
) -> None:
    path = write(tmp_path, CORE + f"password = {toml}\n[state]\nredis_url = {toml}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "4711" not in str(info.value)
    assert f"cores[0].password: expected a string or a whole number (a PIN), got {kind}" in str(
        info.value
    )
    assert any(p.startswith("state.redis_url: expected a string") for p in info.value.problems)


def test_a_boolean_secret_is_refused_as_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, CORE + "password = true\n")
    with pytest.raises(ConfigError, match=r"cores\[0\]\.password: .* got a boolean"):
        load_config(path, env={})


def test_username_without_a_pin_is_a_warning_not_an_error(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CORE), env={})
    [warning] = config_warnings(config)
    assert warning.startswith("cores[0].username: 'operator' is set but no password (PIN)")
    assert "core-main-password" in warning
    with_pin = load_config(write(tmp_path, CORE + "password = 1234\n"), env={})
    assert config_warnings(with_pin) == []


def test_default_state_dir_comes_from_the_given_environment() -> None:
    config = load_config(None, env={"XDG_STATE_HOME": "/srv/state", "HOME": "/home/ann"})
    assert config.state.dir == "/srv/state/qsysd"


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        (
            {"STATE_DIRECTORY": "/var/lib/qsysd:/var/lib/other", "HOME": "/h"},
            "linux",
            "/var/lib/qsysd",
        ),
        ({"STATE_DIRECTORY": "/var/lib/qsysd", "HOME": "/h"}, "darwin", "/var/lib/qsysd"),
        ({"XDG_STATE_HOME": "/x", "HOME": "/h"}, "linux", "/x/qsysd"),
        ({"XDG_STATE_HOME": "relative/is/ignored", "HOME": "/h"}, "linux", "/h/.local/state/qsysd"),
        ({"HOME": "/h"}, "freebsd14", "/h/.local/state/qsysd"),
        ({"HOME": "/Users/ann"}, "darwin", "/Users/ann/Library/Application Support/qsysd"),
        (
            {"LOCALAPPDATA": "C:/Users/ann/AppData/Local"},
            "win32",
            "C:/Users/ann/AppData/Local/qsysd",
        ),
        ({"LOCALAPPDATA": "C:/L", "STATE_DIRECTORY": "C:/x:/y"}, "win32", "C:/L/qsysd"),
        ({"USERPROFILE": "C:/Users/bo"}, "win32", "C:/Users/bo/AppData/Local/qsysd"),
    ],
)
def test_default_state_dir_per_platform(env: dict[str, str], platform: str, expected: str) -> None:
    assert Path(default_state_dir(env, platform)) == Path(expected)


def test_state_dir_problem_creates_the_folder_and_writes_in_it(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert state_dir_problem(str(target)) is None
    assert target.is_dir() and list(target.iterdir()) == []  # the probe file is gone


def test_state_dir_problem_says_what_failed_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    problem = state_dir_problem(str(tmp_path / "file" / "state"))
    assert problem is not None
    assert problem.startswith(f"state.dir: the state folder '{tmp_path}/file/state' cannot be")
    assert "set state.dir" in problem


def test_empty_state_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"state\.dir: must not be empty"):
        load_config(None, env={"QSYSD_STATE__DIR": '""'})


def test_serving_http_with_no_tokens_file_yet_is_a_warning(tmp_path: Path) -> None:
    from qsysd.access import TokenStore
    from qsysd.config import config_warnings

    env = {"QSYSD_STATE__DIR": str(tmp_path), "QSYSD_HTTP__ENABLED": "true"}
    [warning] = config_warnings(load_config(None, env=env))
    assert "does not exist yet, so every HTTP request but /health will be refused" in warning
    assert not config_warnings(load_config(None, env={**env, "QSYSD_AUTH__MODE": "none"}))
    TokenStore(tmp_path / "tokens.json").create("panel", "viewer")
    assert not config_warnings(load_config(None, env=env))
