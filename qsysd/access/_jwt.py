"""JWT bearer tokens: the checks of an OAuth 2.1 resource server, with keys from a local file.

An authorization server (the site's identity provider) signs access tokens; qsysd only
verifies them, offline, against public keys in ``auth.jwt.keys_file`` (a JWKS document or PEM
public keys / certificates). A token is accepted when all of these hold:

- its header's ``alg`` is one of ``auth.jwt.algorithms`` (asymmetric only: ``none`` and the
  HMAC family are never accepted, so a public key can never be used as a shared secret);
- a key fits it: the ``kid`` it names (or, without one, any key), of the family and curve the
  algorithm needs, and the key's own ``alg`` when the JWK states one;
- the signature verifies; ``iss`` is ``auth.jwt.issuer``; ``aud`` names ``auth.jwt.audience``,
  this server (the MCP token-audience rule: a token issued for another service is refused);
- ``exp`` has not passed and ``nbf`` (if any) has come, within ``auth.jwt.leeway`` seconds;
- ``sub`` is a non-empty string (the principal), and the roles claim names one known role.

:class:`JwtVerifier` implements the MCP SDK's ``TokenVerifier`` protocol (``verify_token``);
the gateway calls :meth:`JwtVerifier.verify`, which says why a token was refused.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import jwt
import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcp.server.auth.provider import AccessToken

from qsysd.access._tokens import file_signature
from qsysd.errors import AuthenticationFailed, ConfigError

if TYPE_CHECKING:
    from mcp.server.auth.provider import TokenVerifier

    from qsysd.config import JwtConfig

__all__ = ["ASYMMETRIC_ALGORITHMS", "JwtVerifier", "VerificationKey", "load_keys"]

log = structlog.get_logger("qsysd.access")

#: Algorithm -> (key family, curve or None). Only signatures a public key can verify but
#: not make: with an HMAC "algorithm" the verifier's key would also mint tokens.
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    **{f"{p}{n}": ("RSA", None) for p in ("RS", "PS") for n in (256, 384, 512)},
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_MIN_RSA_BITS = 2048
_MAX_SUBJECT = 256
_MAX_TOKEN = 16_384  # bytes; a header field this long is no access token
#: Verified tokens remembered (a client sends the same token for its token's lifetime):
#: verifying one costs ~150 us, a look-up ~1 us. Cleared whenever the keys file is re-read.
_VERIFIED_MAX = 1024


@attrs.frozen
class VerificationKey:
    """One public key: its ``kid`` (None from PEM), family (RSA, EC, OKP), curve, JWK ``alg``."""

    kid: str | None
    key: Any = attrs.field(repr=False)
    family: str
    curve: str | None = None
    alg: str | None = None

    def fits(self, alg: str) -> bool:
        family, curve = ASYMMETRIC_ALGORITHMS[alg]
        if self.alg is not None and self.alg != alg:
            return False
        return self.family == family and (curve is None or self.curve == curve)


def _from_public_key(key: Any, kid: str | None, alg: str | None, where: str) -> VerificationKey:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"{where}: an RSA key of {key.key_size} bits is too short "
                             f"(at least {_MIN_RSA_BITS})")  # fmt: skip
        return VerificationKey(kid, key, "RSA", None, alg)
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(key.curve.name)
        if curve is None:
            raise ValueError(f"{where}: curve {key.curve.name} is not one JWT uses")
        return VerificationKey(kid, key, "EC", curve, alg)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        curve = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        return VerificationKey(kid, key, "OKP", curve, alg)
    raise ValueError(f"{where}: a {type(key).__name__} cannot verify JWT signatures")


def _jwk(raw: Any, where: str) -> VerificationKey:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a key must be a JSON object")
    kty = raw.get("kty")
    if kty == "oct":
        raise ValueError(f"{where}: a symmetric ('oct') key is refused: whoever verifies with a "
                         "shared secret can also mint tokens; use RSA, EC or OKP keys")  # fmt: skip
    if "d" in raw:
        raise ValueError(f"{where}: holds a private key; the keys file takes public keys only")
    if raw.get("use", "sig") != "sig":
        raise ValueError(f"{where}: 'use' is {raw['use']!r}; only signature keys ('sig') verify")
    kid, alg = raw.get("kid"), raw.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise ValueError(f"{where}: 'kid' must be a string")
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"{where}: 'alg' {str(alg)[:20]!r} is not an asymmetric JWT algorithm")
    try:
        key = jwt.PyJWK(raw).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{where}: not a usable JWK ({exc})") from None
    return _from_public_key(key, kid, alg, where)


def _pem_keys(text: str) -> list[VerificationKey]:
    keys = []
    blocks = text.split("-----END ")
    for i, block in enumerate(blocks[:-1]):
        begin = block.rfind("-----BEGIN ")
        label = block[begin + len("-----BEGIN ") :].split("-----", 1)[0]
        pem = (block[begin:] + "-----END " + blocks[i + 1].split("\n", 1)[0]).encode()
        where = f"PEM block {i + 1} ({label})"
        if "PRIVATE" in label:
            raise ValueError(f"{where}: a private key; the keys file takes public keys only")
        try:
            if label == "CERTIFICATE":
                key: Any = x509.load_pem_x509_certificate(pem).public_key()
            elif label == "PUBLIC KEY":
                key = load_pem_public_key(pem)
            else:
                raise ValueError(f"{where}: expected PUBLIC KEY or CERTIFICATE")
        except ValueError as exc:
            if str(exc).startswith(where):
                raise
            raise ValueError(f"{where}: cannot be read ({exc})") from None
        keys.append(_from_public_key(key, None, None, where))
    return keys


def load_keys(path: str | os.PathLike[str]) -> list[VerificationKey]:
    """The public keys in a JWKS, JWK or PEM file; ValueError saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{str(path)!r} is not JSON: {exc}") from None
        raw = data.get("keys") if "keys" in data else [data]
        if not isinstance(raw, list):
            raise ValueError(f"{str(path)!r}: 'keys' must be a list of JWKs")
        keys = [_jwk(k, f"keys[{i}]") for i, k in enumerate(raw)]
    elif "-----BEGIN " in text:
        keys = _pem_keys(text)
    else:
        raise ValueError(f"{str(path)!r} is neither a JWKS document nor PEM public keys")
    if not keys:
        raise ValueError(f"{str(path)!r} holds no key")
    kids = [k.kid for k in keys if k.kid is not None]
    duplicate = next((kid for kid in kids if kids.count(kid) > 1), None)
    if duplicate is not None:
        raise ValueError(f"{str(path)!r}: kid {duplicate!r} is given twice")
    return keys


if TYPE_CHECKING:  # mypy checks that the MCP SDK's protocol is met

    def _is_token_verifier(verifier: JwtVerifier) -> TokenVerifier:
        return verifier


def _role_claim(claims: dict[str, Any], path: str) -> Any:
    """The value of a claim; a dotted name reaches into objects (``realm_access.roles``)."""
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class JwtVerifier:
    """Verifies JWT access tokens against the keys file; reloads it when it changes.

    ``is_role`` tells which role names exist. The keys file is re-read when its modification
    time, size or inode changed (checked on use, as the tokens file is) and on :meth:`load`.
    """

    def __init__(self, config: JwtConfig, *, is_role: Callable[[str], bool]) -> None:
        if not (config.issuer and config.audience and config.keys_file):
            raise ValueError("JWT verification needs an issuer, an audience and a keys file")
        self.config = config
        self.issuer: str = config.issuer
        self.audience: str = config.audience
        self.path = Path(config.keys_file)
        self._is_role = is_role
        self._keys: list[VerificationKey] = []
        self._seen: tuple[int, int, int] | None = None
        self._verified: dict[str, AccessToken] = {}
        self.reloads = 0

    def load(self) -> None:
        """Read the keys file now; an unusable one raises :class:`ConfigError`."""
        signature = file_signature(self.path)
        self._verified.clear()  # a withdrawn key's tokens must not live on in here
        try:
            self._keys = load_keys(self.path)
        except ValueError as exc:
            self._keys = []
            raise ConfigError([f"auth.jwt.keys_file: {exc}"]) from None
        self._seen = signature
        self.reloads += 1
        log.info("jwt.keys_loaded", path=str(self.path), keys=len(self._keys),
                 kids=[k.kid for k in self._keys if k.kid])  # fmt: skip

    def reload_if_changed(self, *, force: bool = False) -> None:
        """Re-read a changed keys file; one that became unusable fails closed (no JWT works)."""
        signature = file_signature(self.path)
        if signature == self._seen and not force:
            return
        try:
            self.load()
        except ConfigError as exc:
            self._seen = signature
            log.error("jwt.invalid_keys_file", problem=exc.problems[0], path=str(self.path))

    async def verify_token(self, token: str) -> AccessToken | None:
        """The MCP SDK's ``TokenVerifier``: the token's access info, or None when refused."""
        try:
            return self.verify(token)
        except AuthenticationFailed:
            return None

    def verify(self, token: str) -> AccessToken:
        """The access info of a valid token, or :class:`AuthenticationFailed` saying why."""
        if len(token) > _MAX_TOKEN:
            raise AuthenticationFailed("the bearer token is too long to be an access token")
        self.reload_if_changed()
        cached = self._verified.pop(token, None)
        # A verified token stays valid until it expires (its nbf has passed already).
        if cached is not None and time.time() <= (cached.expires_at or 0) + self.config.leeway:
            self._verified[token] = cached  # the most recently used is evicted last
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationFailed(
                "the bearer token is neither a qsysd API token (qsysd_...) nor a JWT"
            ) from None
        alg, kid = header.get("alg"), header.get("kid")
        allowed = self.config.algorithms
        if not isinstance(alg, str) or alg not in allowed:
            raise AuthenticationFailed(
                f"the JWT's algorithm {str(alg)[:20]!r} is not accepted "
                f"(auth.jwt.algorithms: {', '.join(allowed)})"
            )
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationFailed("the JWT's 'kid' header is not a string")
        named = [k for k in self._keys if kid is None or k.kid == kid]
        if not named:
            raise AuthenticationFailed(
                f"no key with kid {kid[:64]!r} in auth.jwt.keys_file (rotated out, or signed by "
                "another issuer)" if kid else "auth.jwt.keys_file holds no usable key"
            )  # fmt: skip
        candidates = [k for k in named if k.fits(alg)]
        if not candidates:
            raise AuthenticationFailed(
                f"the JWT says {alg} but its key "
                + (f"{kid[:64]!r} " if kid else "")
                + "is not a key for that algorithm"
            )
        claims = self._decode(token, alg, candidates)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > _MAX_SUBJECT:
            raise AuthenticationFailed(
                f"the JWT's 'sub' must be a non-empty string of at most {_MAX_SUBJECT} characters"
            )
        scopes = claims.get("scope")
        access = AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or subject),
            scopes=scopes.split() if isinstance(scopes, str) else [],
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=subject,
            claims=claims,
        )
        if len(self._verified) >= _VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = access
        return access

    def _decode(
        self, token: str, alg: str, candidates: Sequence[VerificationKey]
    ) -> dict[str, Any]:
        c = self.config
        for candidate in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=candidate.key,
                    algorithms=[alg],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=c.leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
                return claims
            except jwt.InvalidSignatureError:
                continue  # without a kid, another key may be the one
            except jwt.ExpiredSignatureError:
                raise AuthenticationFailed(
                    f"the JWT expired (exp, with {c.leeway:g} s leeway)"
                ) from None
            except jwt.ImmatureSignatureError:
                raise AuthenticationFailed(
                    f"the JWT is not valid yet (nbf, with {c.leeway:g} s leeway)"
                ) from None
            except jwt.InvalidAudienceError:
                raise AuthenticationFailed(
                    f"the JWT was not issued for this server: its 'aud' must name {self.audience}"
                ) from None
            except jwt.InvalidIssuerError:
                raise AuthenticationFailed(
                    f"the JWT's issuer is not {self.issuer} (auth.jwt.issuer)"
                ) from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthenticationFailed(f"the JWT has no {exc.claim!r} claim") from None
            except jwt.PyJWTError as exc:
                raise AuthenticationFailed(f"the JWT is not valid ({exc})") from None
        raise AuthenticationFailed("the JWT's signature does not verify with auth.jwt.keys_file")

    def role(self, access: AccessToken) -> str:
        """The one role the token's roles claim names, or AuthenticationFailed."""
        claim = self.config.roles_claim
        value = _role_claim(access.claims or {}, claim)
        if value is None:
            raise AuthenticationFailed(f"the JWT has no {claim!r} claim naming its qsysd role")
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AuthenticationFailed(f"the JWT's {claim!r} claim must be a string or a list")
        unknown = [n for n in names if not self._is_role(n)]
        if unknown:
            shown = ", ".join(repr(n[:40]) for n in unknown[:5])
            raise AuthenticationFailed(f"the JWT's {claim!r} claim names unknown role(s) {shown}")
        if len(set(names)) != 1:
            raise AuthenticationFailed(
                f"the JWT's {claim!r} claim must name exactly one role (qsysd acts with one "
                f"role per caller), got {len(set(names))}"
            )
        return str(names[0])
