"""contrib/kubernetes/: valid against the Kubernetes schemas, and true to qsysd.

kubernetes-validate checks every manifest against the bundled OpenAPI schemas of its latest
Kubernetes version (offline, strict: an unknown field fails). The rest holds the manifests to
qsysd itself: probes on real routes, ports and hosts that match the configuration, Secret keys
under the names qsysd reads, a pod that meets the restricted Pod Security Standard.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from _contrib import KUBERNETES, REAL_ROUTES, load_yaml_documents, paths_in_command

from qsysd.config import Config, load_config, parse_listen_address
from qsysd.server._asgi import matches_host
from qsysd.server._http import OPEN_PATHS

POD_IP = "10.244.1.17"


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource, from the files kustomization.yaml lists."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in load_yaml_documents(KUBERNETES / name):
            found[doc["kind"], doc["metadata"]["name"]] = doc
    return found


def pod(kind: str = "Deployment") -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[kind, "qsysd"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (found,) = pod()["containers"]
    result: dict[str, Any] = found
    return result


def container_env() -> dict[str, str]:
    """The container's environment as the kubelet sets it ($(POD_IP) expanded)."""
    env = {}
    for item in container()["env"]:
        if "value" in item:
            env[item["name"]] = item["value"].replace("$(POD_IP)", POD_IP)
    return env


def mount_of(volume: str) -> dict[str, Any]:
    (found,) = [m for m in container()["volumeMounts"] if m["name"] == volume]
    result: dict[str, Any] = found
    return result


def loaded_config(tmp_path: Path) -> Config:
    """qsysd's configuration in the pod: the ConfigMap's file, the env, the mounted Secret."""
    resources = manifests()
    config_file = tmp_path / "qsysd.toml"
    config_file.write_text(resources["ConfigMap", "qsysd-config"]["data"]["qsysd.toml"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in resources["Secret", "qsysd-secrets"]["stringData"].items():
        (secrets / key).write_text(value)
    assert mount_of("secrets")["mountPath"] == "/run/secrets"
    env = {**container_env(), "QSYSD_CONFIG": str(config_file)}
    # The Secret is mounted at /run/secrets; CREDENTIALS_DIRECTORY is read by the same names.
    env["CREDENTIALS_DIRECTORY"] = str(secrets)
    return load_config(env=env)


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize(
    "path", sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_manifest_is_valid_for_kubernetes(path: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in load_yaml_documents(KUBERNETES / path):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")


def test_the_pod_configuration_loads_with_every_core_secret(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    assert config.cores and all(core.password is not None for core in config.cores)
    assert config.state.redis_url is not None and config.auth.rate_limit_storage is not None
    assert config.auth.mode == "token"


def test_probes_use_real_routes_and_the_container_port(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    (listen,) = [parse_listen_address(a) for a in config.http.listen_addresses()]
    (port,) = container()["ports"]
    assert port["containerPort"] == listen.port and listen.host == "0.0.0.0"
    c = container()
    for probe in ("startupProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        # An httpGet probe cannot carry a token: its route must be open.
        assert get["path"] == "/health" and get["path"] in OPEN_PATHS
        assert get["port"] == port["name"]
    command = c["readinessProbe"]["exec"]["command"]
    assert paths_in_command(command) == {"/ready"} <= REAL_ROUTES
    assert f"127.0.0.1:{listen.port}/ready" in command[-1]
    # The probe's token file is in the tokens Secret, under its mount.
    token_file = Path(next(w for w in command[-1].split('"') if w.endswith("probe.token")))
    assert str(token_file.parent) == mount_of("tokens")["mountPath"]
    assert token_file.name in manifests()["Secret", "qsysd-tokens"]["stringData"]
    assert Path(config.tokens_path()).parent == token_file.parent
    # Prometheus's pod annotations name the same port and the metrics route.
    annotations = manifests()["Deployment", "qsysd"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == listen.port
    assert annotations["prometheus.io/path"] in REAL_ROUTES


def test_kubelet_prometheus_and_ingress_hosts_are_allowed(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    allowed = tuple(config.http.allowed_hosts)
    (listen,) = [parse_listen_address(a) for a in config.http.listen_addresses()]
    assert matches_host(f"{POD_IP}:{listen.port}", allowed)  # probes, pod-level scrapes
    assert matches_host(f"qsysd.qsysd.svc:{listen.port}", allowed)
    ingress = manifests()["Ingress", "qsysd"]
    (rule,) = ingress["spec"]["rules"]
    assert matches_host(rule["host"], allowed)
    assert f"https://{rule['host']}" in config.http.allowed_origins


def test_the_pod_meets_the_restricted_security_standard() -> None:
    spec = pod()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's user
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    resources = container()["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    namespace = manifests()["Namespace", "qsysd"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_state_and_tmp_are_writable_volumes(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    volumes = {v["name"]: v for v in pod()["volumes"]}
    assert mount_of("state")["mountPath"] == config.state.dir
    assert "emptyDir" in volumes["state"] or "persistentVolumeClaim" in volumes["state"]
    assert mount_of("tmp")["mountPath"] == "/tmp"
    assert mount_of("config")["mountPath"] == container_env()["QSYSD_CONFIG"]


def test_service_ingress_budget_and_policy_select_the_pods() -> None:
    resources = manifests()
    labels = resources["Deployment", "qsysd"]["spec"]["template"]["metadata"]["labels"]
    port_name = container()["ports"][0]["name"]
    service = resources["Service", "qsysd"]["spec"]
    assert service["selector"].items() <= labels.items()
    (service_port,) = service["ports"]
    assert service_port["targetPort"] == port_name
    backend = resources["Ingress", "qsysd"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"] == {"name": "qsysd", "port": {"name": service_port["name"]}}
    budget = resources["PodDisruptionBudget", "qsysd"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] < resources["Deployment", "qsysd"]["spec"]["replicas"]
    policy = resources["NetworkPolicy", "qsysd"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert [p["port"] for p in policy["ingress"][0]["ports"]] == [port_name]


def test_the_network_policy_lets_the_pod_reach_its_cores(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    policy = manifests()["NetworkPolicy", "qsysd"]["spec"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {core.port for core in config.cores} <= egress_ports
    assert 6379 in egress_ports and 53 in egress_ports
    networks = [
        ipaddress.ip_network(to["ipBlock"]["cidr"])
        for rule in policy["egress"]
        for to in rule["to"]
        if "ipBlock" in to
    ]
    for core in config.cores:
        assert any(ipaddress.ip_address(core.host) in net for net in networks), core.name
