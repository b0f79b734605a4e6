"""Configuration: strict types, every problem at once, env overrides, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsysd.config import Secret, load_config, redacted
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


def test_token_auth_requires_tokens() -> None:
    with pytest.raises(ConfigError, match=r"auth\.tokens: required"):
        load_config(None, env={"QSYSD_AUTH__MODE": "token"})


def test_redacted_view_hides_every_secret(tmp_path: Path) -> None:
    config = load_config(
        None,
        env={
            "QSYSD_CORES__0__NAME": "m",
            "QSYSD_CORES__0__HOST": "h",
            "QSYSD_CORES__0__USERNAME": "u",
            "QSYSD_CORES__0__PASSWORD": "pin-1234",
            "QSYSD_AUTH__MODE": "token",
            "QSYSD_AUTH__TOKENS": "tok-abcdef",
        },
    )
    text = repr(redacted(config))
    assert "pin-1234" not in text and "tok-abcdef" not in text
    assert redacted(config)["cores"][0]["password"] == "***"
    assert sorted(config.secrets()) == ["pin-1234", "tok-abcdef"]
