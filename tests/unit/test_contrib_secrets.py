"""contrib/secrets/: every way of delivering secrets renders the files qsysd reads.

Vault Agent, the Vault Agent Injector, the Secrets Store CSI driver and the systemd drop-in
each name the credentials; here those names are held to the ones qsysd looks for with the
example configuration, and the Kubernetes patches, applied, still give a valid Deployment.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from _contrib import CONTRIB
from test_contrib_kubernetes import loaded_config, manifests

from qsysd.config import Config

SECRETS = CONTRIB / "secrets"


def credentials(config: Config) -> set[str]:
    """The credential names qsysd reads for ``config`` (docs/configuration.md#secrets)."""
    names = {f"core-{core.name}-password" for core in config.cores}
    if config.state.backend == "redis":
        names.add("redis-url")
    if config.auth.rate_limit_storage is not None:
        names.add("rate-limit-storage")
    return names


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge as kubectl does it for these patches: lists of named items by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base.get(key), value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and all("name" in p for p in patch):
        out_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            for i, existing in enumerate(out_list):
                if existing.get("name") == item["name"]:
                    out_list[i] = merge(existing, item)
                    break
            else:
                out_list.append(item)
        return out_list
    return patch


def patched(name: str) -> dict[str, Any]:
    deployment = manifests()["Deployment", "qsysd"]
    result: dict[str, Any] = merge(deployment, yaml.safe_load((SECRETS / name).read_text()))
    kubernetes_validate.validate(result, kubernetes_validate.latest_version(), strict=True)
    return result


@pytest.fixture
def needed(tmp_path: Path) -> set[str]:
    names = credentials(loaded_config(tmp_path))
    assert names == set(manifests()["Secret", "qsysd-secrets"]["stringData"])
    return names


def test_vault_agent_renders_every_credential_and_systemd_loads_them(needed: set[str]) -> None:
    agent = (SECRETS / "vault-agent.hcl").read_text()
    rendered = dict(
        (Path(path).name, path) for path in re.findall(r'destination\s*=\s*"([^"]+)"', agent)
    )
    assert set(rendered) == needed
    drop_in = (SECRETS / "qsysd-vault.conf").read_text()
    loaded = dict(re.findall(r"^LoadCredential=([\w-]+):(\S+)$", drop_in, re.M))
    assert loaded == rendered  # each credential from the file the agent writes


def test_the_vault_injector_patch_renders_every_credential_where_qsysd_looks(
    needed: set[str],
) -> None:
    deployment = patched("vault-injector.patch.yaml")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    injected = {
        k.rsplit("agent-inject-secret-", 1)[1] for k in annotations if "inject-secret-" in k
    }
    templated = {
        k.rsplit("agent-inject-template-", 1)[1] for k in annotations if "inject-template-" in k
    }
    assert injected == templated == needed
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CREDENTIALS_DIRECTORY"] == "/vault/secrets"  # the injector's folder
    assert env["QSYSD_CONFIG"]  # the rest of the container is unchanged
    user = annotations["vault.hashicorp.com/agent-run-as-user"]
    assert int(user) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]


def test_the_csi_driver_mounts_every_credential_at_run_secrets(needed: set[str]) -> None:
    provider = yaml.safe_load((SECRETS / "secret-provider-class.yaml").read_text())
    objects = yaml.safe_load(provider["spec"]["parameters"]["objects"])
    assert {o["objectName"] for o in objects} == needed
    deployment = patched("csi.patch.yaml")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "secret" not in volumes["secrets"]
    attributes = volumes["secrets"]["csi"]["volumeAttributes"]
    assert attributes["secretProviderClass"] == provider["metadata"]["name"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secrets"] == "/run/secrets"
