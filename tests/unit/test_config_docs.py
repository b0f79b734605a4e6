"""docs/configuration.md documents every configuration key with its default."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from qsysd.config import (
    AuthConfig,
    CoreConfig,
    DaemonConfig,
    HttpConfig,
    JwtConfig,
    LoggingConfig,
    PluginsConfig,
    PolicyConfig,
    StateConfig,
    default_state_dir,
)

DOC = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
SECTIONS = {
    "[[cores]]": CoreConfig,
    "[http]": HttpConfig,
    "[auth]": AuthConfig,
    "[auth.jwt]": JwtConfig,
    "[state]": StateConfig,
    "[policy]": PolicyConfig,
    "[plugins]": PluginsConfig,
    "[logging]": LoggingConfig,
    "[daemon]": DaemonConfig,
}

#: Defaults computed at start-up: the row must say how, naming this.
COMPUTED = {default_state_dir: "$STATE_DIRECTORY"}


def section(heading: str) -> str:
    start = DOC.index(f"## `{heading}`")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end >= 0 else None]


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_key_is_documented_with_its_default(heading: str) -> None:
    text = section(heading)
    rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\| ([^|]*) \|", text, flags=re.M))
    for field in attrs.fields(SECTIONS[heading]):
        assert field.name in rows, f"{heading} {field.name} is not documented"
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.factory in COMPUTED:
                assert COMPUTED[default.factory] in rows[field.name], field.name
                continue
            default = default.factory()
        if default is attrs.NOTHING:
            assert rows[field.name].strip() == "required"
        elif isinstance(default, str):
            assert f'"{default}"' in rows[field.name], field.name
        elif isinstance(default, bool):
            assert str(default).lower() in rows[field.name], field.name
        elif isinstance(default, int | float):
            assert str(default) in rows[field.name], field.name
