"""The JWT keys file, the [auth.jwt] checks of `config check`, and the per-role write policy."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from qsysd.access import Authenticator, JwtVerifier, Roles, TokenStore
from qsysd.access._jwt import load_keys
from qsysd.config import JwtConfig, PolicyConfig, RolePolicyConfig, load_config
from qsysd.errors import AuthenticationFailed, ConfigError, PolicyViolation
from qsysd.policy import Policy, ProposedWrite, acting_role

ISSUER = "https://login.test"
AUDIENCE = "https://qsys.test/mcp"


def pem(key: object, private: bool = False) -> str:
    if private:
        return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def certificate(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_pem_public_keys_and_certificates_verify_tokens(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "keys.pem"
    path.write_text(certificate(ec_key) + pem(ed_key.public_key()))
    keys = load_keys(path)
    assert [(k.family, k.curve, k.kid) for k in keys] == [("EC", "P-256", None),
                                                         ("OKP", "Ed25519", None)]  # fmt: skip
    verifier = JwtVerifier(
        JwtConfig(issuer=ISSUER, audience=AUDIENCE, keys_file=str(path)),
        is_role=Roles().__contains__,
    )
    verifier.load()
    claims = {"iss": ISSUER, "aud": [AUDIENCE, "other"], "sub": "svc", "exp": time.time() + 60,
              "realm_access": {"roles": ["operator"]}, "scope": "qsys.read qsys.write"}  # fmt: skip
    for key, alg in ((ec_key, "ES256"), (ed_key, "EdDSA")):  # no kid: each key is tried
        access = verifier.verify(jwt.encode(claims, key, algorithm=alg))
        assert access.subject == "svc" and access.resource == AUDIENCE
        assert access.scopes == ["qsys.read", "qsys.write"]
    nested = JwtVerifier(
        JwtConfig(issuer=ISSUER, audience=AUDIENCE, keys_file=str(path),
                  roles_claim="realm_access.roles"), is_role=Roles().__contains__,
    )  # fmt: skip
    nested.load()
    assert nested.role(nested.verify(jwt.encode(claims, ec_key, algorithm="ES256"))) == "operator"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric ('oct') key is refused"),
        ("not a key", "neither a JWKS document nor PEM"),
        ('{"keys": []}', "holds no key"),
        ('{"keys": [{"kty": "RSA", "n": "AQAB"}]}', "not a usable JWK"),
        ("{broken", "is not JSON"),
    ],
)
def test_an_unusable_keys_file_says_why(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_keys(path)


def test_private_short_and_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_text(pem(rsa_key, private=True))
    with pytest.raises(ValueError, match="a private key; the keys file takes public keys only"):
        load_keys(path)
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key))
    path.write_text(json.dumps({"keys": [private_jwk]}))
    with pytest.raises(ValueError, match="holds a private key"):
        load_keys(path)
    path.write_text(
        pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    )
    with pytest.raises(ValueError, match="1024 bits is too short"):
        load_keys(path)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    path.write_text(json.dumps({"keys": [{**public, "kid": "a"}, {**public, "kid": "a"}]}))
    with pytest.raises(ValueError, match="kid 'a' is given twice"):
        load_keys(path)


def write_config(tmp_path: Path, auth: str) -> Path:
    path = tmp_path / "qsysd.toml"
    path.write_text(f'[state]\ndir = "{tmp_path}"\n{auth}')
    return path


def test_config_check_names_every_jwt_problem(tmp_path: Path) -> None:
    missing = write_config(tmp_path, '[auth]\nmode = "jwt"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(missing, env={})
    text = "\n".join(caught.value.problems)
    assert "auth.jwt.issuer: required with auth.mode 'jwt'" in text
    assert "auth.jwt.audience: required with auth.mode 'jwt'" in text
    assert "auth.jwt.keys_file: required with auth.mode 'jwt'" in text
    bad = write_config(
        tmp_path,
        '[auth]\nmode = "token+jwt"\n[auth.jwt]\nissuer = "login.test"\naudience = "qsys"\n'
        f'keys_file = "{tmp_path / "nope.json"}"\n'
        'algorithms = ["none", "HS256", "RS256", "RS256"]\n'
        'leeway = 3600\nroles_claim = "a..b"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad, env={})
    text = "\n".join(caught.value.problems)
    for expected in (
        "auth.jwt.issuer: 'login.test' must be an http(s) URL",
        "auth.jwt.audience: 'qsys' must be an http(s) URL",
        "auth.jwt.keys_file: cannot read",
        "auth.jwt.algorithms: 'none' is refused (an unsigned token proves nothing)",
        "auth.jwt.algorithms: 'HS256' is refused (a shared secret would let this server mint",
        "auth.jwt.algorithms: an algorithm is listed twice",
        "auth.jwt.leeway: must be 0 to 300 seconds",
        "auth.jwt.roles_claim: 'a..b' is not a claim name",
    ):
        assert expected in text, text
    unused = write_config(tmp_path, '[auth.jwt]\nissuer = "https://login.test"\n')
    with pytest.raises(ConfigError, match=r"auth\.jwt: set, but auth\.mode is 'token'"):
        load_config(unused, env={})


def test_config_check_reads_the_keys_file_and_matches_it_to_the_algorithms(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.pem"
    keys.write_text(pem(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwt_table = (f'[auth]\nmode = "jwt"\n[auth.jwt]\nissuer = "{ISSUER}"\n'
                 f'audience = "{AUDIENCE}"\nkeys_file = "{keys}"\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"no key fits any of auth\.jwt\.algorithms"):
        load_config(write_config(tmp_path, jwt_table), env={})
    good = load_config(write_config(tmp_path, jwt_table + 'algorithms = ["ES384"]\n'), env={})
    assert Authenticator.from_config(good).mode == "none"  # no HTTP: nobody authenticates
    serving = load_config(write_config(tmp_path, jwt_table + 'algorithms = ["ES384"]\n'),
                          env={"QSYSD_HTTP__ENABLED": "true"})  # fmt: skip
    authenticator = Authenticator.from_config(serving)
    assert authenticator.jwt is not None and authenticator.tokens is None
    assert authenticator.resource_metadata("http://x/mcp")["authorization_servers"] == [ISSUER]


async def test_tokens_and_jwts_are_told_apart_by_the_prefix(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "keys.pem").write_text(pem(key.public_key()))
    roles = Roles()
    tokens = TokenStore(tmp_path / "tokens.json", roles=roles.__contains__)
    token = tokens.create("panel", "viewer")
    config = JwtConfig(issuer=ISSUER, audience=AUDIENCE, keys_file=str(tmp_path / "keys.pem"))
    verifier = JwtVerifier(config, is_role=roles.__contains__)
    verifier.load()
    auth = Authenticator("token+jwt", tokens=tokens, jwt=verifier, roles=roles)
    assert auth.authenticate(f"Bearer {token}", "rest", None).name == "panel"
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": time.time() + 60,
              "roles": "admin"}  # fmt: skip
    principal = auth.authenticate(f"Bearer {jwt.encode(claims, key, 'ES256')}", "mcp", "::1")
    assert (principal.name, principal.role, principal.door) == ("svc", "admin", "mcp")
    assert principal.may("admin")
    with pytest.raises(AuthenticationFailed, match="neither a qsysd API token"):
        auth.authenticate("Bearer not-a-jwt", "rest", None)
    # The MCP SDK's TokenVerifier protocol: access info, or None for a refused token.
    access = await verifier.verify_token(jwt.encode(claims, key, "ES256"))
    assert access is not None and access.subject == "svc" and access.claims
    assert await verifier.verify_token("not-a-jwt") is None
    with pytest.raises(AuthenticationFailed, match="'sub' must be a non-empty string"):
        auth.authenticate(f"Bearer {jwt.encode({**claims, 'sub': ''}, key, 'ES256')}", "rest", None)


def test_a_role_policy_narrows_writes_only_for_that_role() -> None:
    policy = Policy(PolicyConfig(roles={
        "panel": RolePolicyConfig(controls=["Lobby*", "main:Scenes.load.1"]),
        "kiosk": RolePolicyConfig(read_only=True),
    }))  # fmt: skip
    lobby = ProposedWrite("Lobby_BGM.mute", core="main", type="Boolean", value=True)
    bar = ProposedWrite("Bar.mute", core="main", type="Boolean", value=True)
    policy.check_write(bar)  # outside any call: the global policy only
    with acting_role("operator"):
        policy.check_write(bar)
    with acting_role("panel"):
        policy.check_write(lobby)
        policy.check_not_protected("Scenes.load.1", "main")
        with pytest.raises(PolicyViolation, match="role 'panel' may write only") as caught:
            policy.check_write(bar)
        assert caught.value.rule == "role"
        with pytest.raises(PolicyViolation, match=r"Scenes\.load\.2 is not one of them"):
            policy.check_not_protected("Scenes.load.2", "main")
    with acting_role("kiosk"), pytest.raises(PolicyViolation, match="role 'kiosk' is read-only"):
        policy.check_write(lobby)


def test_config_check_refuses_a_role_policy_for_an_unknown_role(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[policy.roles.panel]\ncontrols = []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    text = "\n".join(caught.value.problems)
    assert "policy.roles.panel: unknown role 'panel'" in text
    assert "policy.roles.panel.controls: empty" in text
    ok = write_config(tmp_path, '[auth.roles]\npanel = ["read", "write"]\n'
                                '[policy.roles.panel]\ncontrols = ["Lobby*"]\n')  # fmt: skip
    assert load_config(ok, env={}).policy.roles["panel"].controls == ["Lobby*"]


def test_serving_http_with_an_unusable_state_folder_says_so_first(tmp_path: Path) -> None:
    from qsysd.errors import StartupError

    (tmp_path / "file").write_text("in the way")
    env = {"QSYSD_STATE__DIR": str(tmp_path / "file" / "state"), "QSYSD_HTTP__ENABLED": "true"}
    with pytest.raises(StartupError, match=r"state\.dir: the state folder"):
        Authenticator.from_config(load_config(None, env=env))
