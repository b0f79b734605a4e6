"""contrib/compose.yaml: every service, port, mount, secret and config key fits together.

Docker cannot run here; CI brings the stack up and smoke-tests it. These checks catch what
would make `docker compose up` fail or come up broken: a missing file, a port or host that
does not match qsysd's configuration, a config key qsysd does not have, a secret under a
name qsysd does not read.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from _contrib import COMPOSE, CONTRIB, REAL_ROUTES, alert_rules, image_env, split_command
from _services import require_service

from qsysd.cli import build_parser
from qsysd.config import Config, load_config, parse_listen_address
from qsysd.server._asgi import matches_host

SERVICES = {"qsysd", "emulator", "redis", "prometheus", "grafana", "token-init"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"][name]
    return found


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's volumes."""
    out = {}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def qsysd_config(compose: dict[str, Any], tmp_path: Path, name: str = "qsysd") -> Config:
    """The configuration a qsysd service runs with: image env, service env, its secrets."""
    svc = service(compose, name)
    secrets = tmp_path / name / "secrets"
    secrets.mkdir(parents=True)
    for name in svc["secrets"]:
        shutil.copy(COMPOSE.parent / compose["secrets"][name]["file"], secrets / name)
    env = {**image_env(), **svc["environment"]}
    config_path = env["QSYSD_CONFIG"]
    env["QSYSD_CONFIG"] = str(COMPOSE.parent / mounts(svc)[config_path])
    # Docker mounts the secrets at /run/secrets/<name>; CREDENTIALS_DIRECTORY is read the same
    # way, so the names qsysd looks for are the names the stack provides.
    env["CREDENTIALS_DIRECTORY"] = str(secrets)
    return load_config(env=env)


def test_the_stack_has_its_services_and_each_dependency_exists(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    for name, svc in compose["services"].items():
        for dependency in svc.get("depends_on", []):
            assert dependency in compose["services"], f"{name} depends on {dependency}"
        for target, source in mounts(svc).items():
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} -> {target}"
            else:
                assert source in compose["volumes"], f"{name}: volume {source}"


def test_the_qsysd_configuration_loads_with_its_secrets(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    config = qsysd_config(compose, tmp_path)
    assert config.auth.mode == "token" and config.http.enabled
    assert config.state.backend == "redis" and config.state.redis_url is not None
    assert config.auth.rate_limit_storage is not None
    assert config.state.redis_url.reveal().startswith("redis://redis:")


def test_token_init_loads_the_same_configuration(compose: dict[str, Any], tmp_path: Path) -> None:
    # `qsysd token` refuses to run on a configuration it cannot load (a missing secret).
    assert qsysd_config(compose, tmp_path, "token-init") == qsysd_config(compose, tmp_path)
    init = mounts(service(compose, "token-init"))
    assert init["/var/lib/qsysd"] == mounts(service(compose, "qsysd"))["/var/lib/qsysd"]


def test_qsysd_reaches_the_emulator_where_it_listens(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    config = qsysd_config(compose, tmp_path)
    emulate = build_parser().parse_args(split_command(service(compose, "emulator")["command"]))
    assert emulate.command == "emulate"
    (core,) = config.cores
    assert (core.host, core.port) == ("emulator", emulate.emu_listen[1])
    assert emulate.emu_listen[0] == "0.0.0.0"


def test_published_port_and_prometheus_target_match_the_listen_address(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    config = qsysd_config(compose, tmp_path)
    (listen,) = [parse_listen_address(a) for a in config.http.listen_addresses()]
    (published,) = service(compose, "qsysd")["ports"]
    assert published.startswith("127.0.0.1:"), "published on loopback only"
    assert int(published.rsplit(":", 1)[1]) == listen.port

    prometheus = yaml.safe_load((CONTRIB / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] in REAL_ROUTES
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    assert host == "qsysd" and int(port) == listen.port
    # Prometheus sends the target as Host: qsysd must answer to it (DNS-rebinding check).
    assert matches_host(target, tuple(config.http.allowed_hosts))
    # QsysdDown watches this job.
    (down,) = [r for r in alert_rules() if r.get("alert") == "QsysdDown"]
    assert f'job="{job["job_name"]}"' in down["expr"]


def test_the_scrape_token_is_written_where_prometheus_reads_it(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((CONTRIB / "prometheus" / "prometheus.yml").read_text())
    credentials = Path(prometheus["scrape_configs"][0]["authorization"]["credentials_file"])
    init = service(compose, "token-init")
    volume = mounts(init)[str(credentials.parent)]
    assert mounts(service(compose, "prometheus"))[str(credentials.parent)] == volume
    script = init["command"][0]
    assert "prometheus:viewer" in script and f"{credentials.parent}/" in script
    assert credentials.name == "prometheus.token"
    # The rules Prometheus evaluates are the ones tested by promtool.
    assert mounts(service(compose, "prometheus"))["/etc/prometheus"] == "./prometheus"
    assert prometheus["rule_files"] == ["alerts.yml"]


def test_grafana_provisions_the_dashboard_and_the_prometheus_source(
    compose: dict[str, Any],
) -> None:
    grafana = mounts(service(compose, "grafana"))
    provider = yaml.safe_load(
        (CONTRIB / "grafana" / "provisioning" / "dashboards" / "qsysd.yml").read_text()
    )
    (dashboards,) = provider["providers"]
    assert grafana[f"{dashboards['options']['path']}/qsysd.json"] == "./grafana/qsysd.json"
    source = yaml.safe_load(
        (CONTRIB / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = source["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["isDefault"]


def test_the_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    promtool = require_service("promtool", how="apt-get install prometheus")
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(CONTRIB / "prometheus" / name, tmp_path / name)
    # The token file exists only inside the stack; promtool checks that it is there.
    token = tmp_path / "prometheus.token"
    token.write_text("qsysd_example\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(config.read_text().replace("/run/qsysd-tokens/prometheus.token", str(token)))
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
