"""JWT access tokens on /mcp and /api, beside API tokens, and the per-role write policy.

Keys are made by each test (cryptography); only public keys are written to disk. Real
clients over loopback: httpx for REST and raw /mcp, the MCP SDK's Streamable HTTP client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from test_example_plugin import PLUGIN as EXAMPLE_PLUGIN
from test_http_access import SET, bearer
from test_http_front import WAIT, http_stack, problem

from qsysd.access import Authenticator, JwtVerifier, Roles, TokenStore
from qsysd.config import JwtConfig, PolicyConfig, RolePolicyConfig
from qsysd.emulator import EmulatorServer
from qsysd.plugins import Registry
from qsysd.state import Journal

ISSUER = "https://login.venue.test/realms/venue"
AUDIENCE = "https://qsys.venue.test/mcp"
GET = {"controls": ["Bar.gain"]}


class Signer:
    """An authorization server of the test: a private key, its public JWKS on disk, tokens."""

    def __init__(self, path: Path, kid: str = "k1") -> None:
        self.path = path
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = kid
        self.rotate(kid)

    def rotate(self, kid: str, *, keep: bool = False) -> None:
        """A new key named ``kid``; the JWKS keeps the old ones only with ``keep``."""
        if not keep:
            self.keys.clear()
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        jwks = {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                          "kid": name, "use": "sig"} for name, k in self.keys.items()]}  # fmt: skip
        self.path.write_text(json.dumps(jwks))

    def token(self, role: Any = "operator", *, key: Any = None, kid: str | None = None,
              headers: dict[str, Any] | None = None, **claims: Any) -> str:  # fmt: skip
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "agent-7", "iat": now, "exp": now + 300,
                "roles": role, **claims}  # fmt: skip
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[self.kid], algorithm="RS256",
                          headers={"kid": kid or self.kid, **(headers or {})})  # fmt: skip


def jwt_auth(tmp_path: Path, mode: str = "token+jwt") -> tuple[Authenticator, Signer, TokenStore]:
    signer = Signer(tmp_path / "jwks.json")
    roles = Roles({"panel": ["read", "write"]})
    tokens = TokenStore(tmp_path / "tokens.json", roles=roles.__contains__)
    tokens.load()
    config = JwtConfig(issuer=ISSUER, audience=AUDIENCE, keys_file=str(signer.path), leeway=5)
    verifier = JwtVerifier(config, is_role=roles.__contains__)
    verifier.load()
    return Authenticator(mode, tokens=tokens, jwt=verifier, roles=roles), signer, tokens  # type: ignore[arg-type]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """A token with ``alg: none`` and no signature, as an attacker would send it."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


BAD_TOKENS: dict[str, tuple[Callable[[Signer], str], str]] = {
    "wrong audience": (lambda s: s.token(aud="https://other.test/mcp"), "not issued for this"),
    "bad signature": (
        lambda s: s.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "signature does not verify",
    ),
    "wrong issuer": (lambda s: s.token(iss="https://evil.test"), "issuer is not"),
    "alg none": (
        lambda s: unsigned(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "roles": "admin",
                "exp": int(time.time()) + 300,
            }
        ),
        "algorithm 'none' is not accepted",
    ),
    "expired": (lambda s: s.token(exp=int(time.time()) - 60), "expired"),
    "not yet valid": (lambda s: s.token(nbf=int(time.time()) + 120), "not valid yet"),
    "unknown role": (lambda s: s.token(role="root"), "unknown role(s) 'root'"),
    "no role": (lambda s: s.token(role=None), "has no 'roles' claim"),
    "two roles": (lambda s: s.token(role=["viewer", "operator"]), "exactly one role"),
    "unknown kid": (lambda s: s.token(kid="gone"), "no key with kid 'gone'"),
    "no exp": (lambda s: s.token(exp=None), "has no 'exp' claim"),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_a_bad_jwt_is_refused_with_401_on_mcp_and_rest(
    emulator: EmulatorServer, tmp_path: Path, case: str, log_text: Callable[[], str]
) -> None:
    auth, signer, _ = jwt_auth(tmp_path)
    make, reason = BAD_TOKENS[case]
    token = make(signer)
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            for path in ("/api/v1/tools/qsys_set", "/mcp"):
                r = await s.client.post(path, json=SET, headers=bearer(token))
                doc = problem(r, 401, "authentication-failed")
                assert reason in doc["detail"], doc
                challenge = r.headers["www-authenticate"]
                assert challenge.startswith(
                    f'Bearer resource_metadata="{s.base}/.well-known/oauth-protected-resource/mcp"'
                )
                assert 'error="invalid_token"' in challenge and "error_description=" in challenge
                assert token not in challenge
            assert emulator.get_value("Bar", "gain") != -7
    assert token not in log_text()


async def test_the_sdk_client_is_refused_a_bad_jwt_and_served_with_a_good_one(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, _ = jwt_auth(tmp_path)
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            for bad in (signer.token(aud="https://other.test/mcp"), signer.token(role="root")):
                answers: list[httpx2.Response] = []

                async def seen(response: httpx2.Response) -> None:
                    answers.append(response)  # noqa: B023 (used within this iteration)

                async with httpx2.AsyncClient(
                    headers=bearer(bad), timeout=WAIT, event_hooks={"response": [seen]}
                ) as http:
                    with pytest.raises(ExceptionGroup, match="Exceptions from Trio nursery"):
                        async with Client(
                            streamable_http_client(f"{s.base}/mcp", http_client=http)
                        ) as client:
                            await client.list_tools()
                assert answers and {a.status_code for a in answers} == {401}
                assert all('error="invalid_token"' in a.headers["www-authenticate"]
                           for a in answers)  # fmt: skip
            async with (
                httpx2.AsyncClient(headers=bearer(signer.token("viewer")), timeout=WAIT) as http,
                Client(streamable_http_client(f"{s.base}/mcp", http_client=http)) as client,
            ):
                names = {t.name for t in (await client.list_tools()).tools}
                assert "qsys_get" in names and "qsys_set" not in names
                result = await client.call_tool("qsys_set", SET)
                assert result.is_error and "agent-7" in str(result.content)
            async with (
                httpx2.AsyncClient(headers=bearer(signer.token("operator")), timeout=WAIT) as http,
                Client(streamable_http_client(f"{s.base}/mcp", http_client=http)) as client,
            ):
                result = await client.call_tool("qsys_set", SET)
                assert not result.is_error, result.content
                assert emulator.get_value("Bar", "gain") == -7


async def test_jwt_roles_decide_what_rest_lists_and_allows_beside_api_tokens(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, tokens = jwt_auth(tmp_path)
    api_token = tokens.create("automation", "operator")
    viewer = signer.token(["viewer"])  # a one-role list counts as that role
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            listed = (await s.client.get("/api/v1/tools", headers=bearer(viewer))).json()["tools"]
            assert {t["permission"] for t in listed} == {"read"}
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(viewer))
            assert "agent-7" in problem(r, 403, "permission-denied")["detail"]
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(viewer))
            assert r.status_code == 200, r.text
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET,
                                    headers=bearer(signer.token("operator")))  # fmt: skip
            assert r.status_code == 200, r.text
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(api_token))
            assert r.status_code == 200, r.text
            metadata = (await s.client.get("/.well-known/oauth-protected-resource/mcp")).json()
            assert metadata["resource"] == AUDIENCE
            assert metadata["authorization_servers"] == [ISSUER]


async def test_api_tokens_are_refused_when_only_jwts_are_accepted(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, tokens = jwt_auth(tmp_path, mode="jwt")
    api_token = tokens.create("automation", "operator")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(api_token))
            assert "auth.mode = 'jwt'" in problem(r, 401, "authentication-failed")["detail"]
            r = await s.client.post("/api/v1/tools/qsys_get", json={})
            assert "JWT from " + ISSUER in problem(r, 401, "authentication-failed")["detail"]
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET,
                                    headers=bearer(signer.token("viewer")))  # fmt: skip
            assert r.status_code == 200, r.text


async def test_a_rotated_key_takes_over_when_the_keys_file_changes(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, _ = jwt_auth(tmp_path)
    old = signer.token("viewer")
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(old))
            assert r.status_code == 200
            signer.rotate("k2", keep=True)  # publish the new key beside the old one
            both = [signer.token("viewer"), old]
            for token in both:
                r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(token))
                assert r.status_code == 200, r.text
            signer.rotate("k3")  # the old keys are withdrawn
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(old))
            assert "no key with kid 'k1'" in problem(r, 401, "authentication-failed")["detail"]
            (tmp_path / "jwks.json").write_text("{broken")  # fails closed, logged
            auth.reload()
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET,
                                    headers=bearer(signer.token("viewer")))  # fmt: skip
            problem(r, 401, "authentication-failed")


async def test_alg_confusion_with_the_public_key_as_an_hmac_secret_is_refused(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, _ = jwt_auth(tmp_path)
    public_pem = (
        signer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "roles": "admin",
              "exp": int(time.time()) + 300}  # fmt: skip
    # The classic forgery: HMAC-signed with the (public) verification key as the secret.
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    es = ec.generate_private_key(ec.SECP256R1())
    wrong_family = jwt.encode(claims, es, algorithm="ES256", headers={"kid": "k1"})
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.get("/api/v1/tools", headers=bearer(forged))
            assert "'HS256' is not accepted" in problem(r, 401, "authentication-failed")["detail"]
            r = await s.client.get("/api/v1/tools", headers=bearer(wrong_family))
            assert (
                "not a key for that algorithm" in problem(r, 401, "authentication-failed")["detail"]
            )


PANEL_POLICY = PolicyConfig(roles={"panel": RolePolicyConfig(controls=["Lobby*"])})


async def test_a_panel_role_writes_only_its_controls_even_through_a_plugin_tool(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, tokens = jwt_auth(tmp_path)
    panel = tokens.create("lobby-panel", "panel")
    admin = tokens.create("security", "admin")
    registry = Registry(entry_points=False)
    assert registry.load_file(EXAMPLE_PLUGIN) is not None, registry.load_errors
    lobby = {"changes": [{"control": "Lobby_BGM.gain", "value": -20}]}
    with trio.fail_after(WAIT):
        async with (
            Journal.open(tmp_path / "journal.db") as journal,
            http_stack(
                emulator, PANEL_POLICY, authenticator=auth, journal=journal, registry=registry
            ) as s,  # fmt: skip
        ):
            post = s.client.post
            r = await post("/api/v1/tools/qsys_set", json=lobby, headers=bearer(panel))
            assert r.status_code == 200, r.text
            assert emulator.get_value("Lobby_BGM", "gain") == -20
            refused = await post("/api/v1/tools/qsys_set", json=SET, headers=bearer(panel))
            doc = problem(refused, 409, "write-failed")  # per control: the rule that refused
            assert "role 'panel' may write only controls matching 'Lobby*'" in json.dumps(doc)
            assert emulator.get_value("Bar", "gain") != -7
            # A plugin tool's writes go through the same check, for the caller's role.
            muted = await post("/api/v1/tools/qsys_mute_zones", json={"pattern": "*"},
                               headers=bearer(panel))  # fmt: skip
            assert muted.status_code == 200, muted.text
            zones = muted.json()["zones"]
            assert any(z.startswith("Lobby_BGM.mute: ") and "role" not in z for z in zones)
            assert any(z.startswith("Bar.mute: ") and "role 'panel'" in z for z in zones)
            assert emulator.get_value("Lobby_BGM", "mute") and not emulator.get_value("Bar", "mute")
            # Snapshot loads are writes too: the bank's trigger must match.
            r = await post("/api/v1/tools/qsys_snapshot_load", json={"bank": "Scenes", "number": 1},
                           headers=bearer(panel))  # fmt: skip
            assert r.status_code == 403 and "role 'panel'" in r.text, r.text
            # Other roles are not narrowed.
            r = await post("/api/v1/tools/qsys_set", json=SET,
                           headers=bearer(signer.token("operator")))  # fmt: skip
            assert r.status_code == 200, r.text

            r = await post("/api/v1/tools/qsys_audit", json={"principal": "lobby-panel"},
                           headers=bearer(admin))  # fmt: skip
            entries = {e["request_id"]: e for e in r.json()["entries"]}
            entry = entries[refused.headers["x-request-id"]]
            assert entry["outcome"] == "refused" and entry["role"] == "panel"
            assert "role 'panel'" in entry["error"]
            history = await post("/api/v1/tools/qsys_history",
                                 json={"kind": "audit", "control": "Bar.mute"},
                                 headers=bearer(admin))  # fmt: skip
            [bar] = history.json()["entries"]
            assert bar["principal"] == "lobby-panel" and bar["outcome"] == "refused"


async def test_a_read_only_role_writes_nothing(emulator: EmulatorServer, tmp_path: Path) -> None:
    auth, _, tokens = jwt_auth(tmp_path)
    panel = tokens.create("lobby-panel", "panel")
    policy = PolicyConfig(roles={"panel": RolePolicyConfig(read_only=True)})
    with trio.fail_after(WAIT):
        async with http_stack(emulator, policy, authenticator=auth) as s:
            r = await s.client.post("/api/v1/tools/qsys_set", json=SET, headers=bearer(panel))
            assert r.status_code == 403 and "role 'panel' is read-only" in r.text, r.text
            r = await s.client.post("/api/v1/tools/qsys_get", json=GET, headers=bearer(panel))
            assert r.status_code == 200


async def test_a_legacy_session_serves_only_the_credentials_that_opened_it(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    auth, signer, tokens = jwt_auth(tmp_path)
    operator = tokens.create("automation", "operator")
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    accept = {"accept": "application/json, text/event-stream"}
    with trio.fail_after(WAIT):
        async with http_stack(emulator, authenticator=auth) as s:
            r = await s.client.post("/mcp", json=init, headers={**accept, **bearer(operator)})
            assert r.status_code == 200, r.text
            session = {**accept, "mcp-session-id": r.headers["mcp-session-id"],
                       "mcp-protocol-version": "2025-11-25"}  # fmt: skip
            r = await s.client.post("/mcp", json=listing, headers={**session, **bearer(operator)})
            assert r.status_code == 200 and "qsys_set" in r.text, r.text
            # The same session id with another principal's credentials: no such session.
            other = signer.token("operator")
            r = await s.client.post("/mcp", json=listing, headers={**session, **bearer(other)})
            assert r.status_code == 404, r.text
