"""`qsysd plugin new` in a fresh virtual environment: install it, its test passes, it is listed.

Slow (a fresh venv and two installs, about a minute): it is the plugin author's first minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_scaffolded_plugin_installs_passes_its_test_and_is_listed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSYSD_", "PYTEST_"))}
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    bin_dir = venv / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    # Editable, so the install writes no build/ folder into the source tree.
    run(bin_dir / "pip", "install", "-q", "-e", f"{ROOT}[test]", cwd=tmp_path, env=env)

    created = run(bin_dir / "qsysd", "plugin", "new", "demo-tool", cwd=tmp_path, env=env)
    assert "created demo-tool" in created.stderr
    assert (tmp_path / "demo-tool" / "src" / "qsysd_demo_tool" / "__init__.py").is_file()
    run(bin_dir / "pip", "install", "-q", "-e", "./demo-tool", cwd=tmp_path, env=env)
    tested = run(bin_dir / "pytest", "demo-tool", cwd=tmp_path, env=env)
    assert "2 passed" in tested.stdout

    listed = run(bin_dir / "qsysd", "plugins", "--json", cwd=tmp_path, env=env)
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    demo = plugins["demo-tool"]
    assert (demo["source"], demo["version"]) == ("entrypoint", "0.1.0")
    assert demo["tools"] == ["demo_tool_zone_level"]
    assert "qsysd_register_tools" in demo["hooks"]
    text = run(bin_dir / "qsysd", "plugins", cwd=tmp_path, env=env).stdout
    assert "demo-tool 0.1.0 (entrypoint)" in text and "tools: demo_tool_zone_level" in text

    again = subprocess.run(
        [bin_dir / "qsysd", "plugin", "new", "demo-tool"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
