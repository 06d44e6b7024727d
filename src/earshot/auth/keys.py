"""The token signing key: from settings, or in development generated once per data directory."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from earshot.auth.settings import AuthSettings
from earshot.common.settings import SettingsError
from earshot.common.tokens import (
    JwtAlgorithm,
    StaticKeyVerifier,
    read_or_create_private_file,
    shared_secret,
)

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
RSA_KEY_BITS = 2048
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}

log = structlog.get_logger()


@dataclass(frozen=True)
class SigningKey:
    """What auth signs with: an asymmetric private key and its `kid`, or the HS256 secret."""

    algorithm: JwtAlgorithm
    private_key: PrivateKey | str
    kid: str | None = None
    public_jwk: dict[str, Any] | None = None

    @property
    def verification_key(self) -> Any:
        """The key that checks this key's signatures (the public key, or the secret itself)."""
        if isinstance(self.private_key, str):
            return self.private_key
        return self.private_key.public_key()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set: this key's public half, or no keys at all in HS256 mode."""
        return {"keys": [self.public_jwk] if self.public_jwk else []}

    def verifier(self, *, issuer: str, audience: str) -> StaticKeyVerifier:
        """A verifier for the tokens this key signs."""
        return StaticKeyVerifier(
            self.verification_key, algorithm=self.algorithm, issuer=issuer, audience=audience
        )


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def from_private_key(key: PrivateKey, *, algorithm: JwtAlgorithm) -> SigningKey:
    """A signing key for an asymmetric private key, its `kid` being the public key's thumbprint."""
    if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif algorithm == "RS256" and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_KEY_BITS:
            raise SettingsError(f"RS256 needs an RSA key of at least {RSA_KEY_BITS} bits")
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        wanted = "an Ed25519" if algorithm == "EdDSA" else "an RSA"
        raise SettingsError(f"EARSHOT_JWT_ALGORITHM={algorithm} needs {wanted} private key")
    kid = jwk_thumbprint(jwk)
    public = {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}
    return SigningKey(algorithm=algorithm, private_key=key, kid=kid, public_jwk=public)


def generate_private_key(algorithm: JwtAlgorithm) -> PrivateKey:
    """A fresh private key for `algorithm` (Ed25519, or RSA 2048 bits)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def dev_key_path(settings: AuthSettings) -> Path:
    """Where the development key for the configured algorithm lives."""
    return settings.data_dir / "keys" / f"jwt-{settings.jwt_algorithm.lower()}.pem"


def load_signing_key(settings: AuthSettings) -> SigningKey:
    """The signing key from settings; in development, generated on first use and then reused."""
    algorithm = settings.jwt_algorithm
    if algorithm == "HS256":
        configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        return SigningKey(
            algorithm="HS256", private_key=shared_secret(settings, configured or None)
        )
    pem, source = _configured_pem(settings)
    if pem is None:
        if settings.env == "production":
            raise SettingsError(
                "EARSHOT_JWT_PRIVATE_KEY or EARSHOT_JWT_PRIVATE_KEY_FILE must be set when "
                f"EARSHOT_ENV=production (EARSHOT_JWT_ALGORITHM={algorithm})"
            )
        path = dev_key_path(settings)
        pem = read_or_create_private_file(
            path, lambda: private_key_pem(generate_private_key(algorithm))
        )
        source = str(path)
    key = from_private_key(_parse_pem(pem, source=source), algorithm=algorithm)
    log.info("signing_key_loaded", algorithm=algorithm, kid=key.kid, source=source)
    return key


def _configured_pem(settings: AuthSettings) -> tuple[bytes | None, str]:
    if settings.jwt_private_key is not None and settings.jwt_private_key.get_secret_value():
        text = settings.jwt_private_key.get_secret_value()
        settings.require_secret("jwt_private_key", text)
        if "\\n" in text and "\n" not in text:
            text = text.replace("\\n", "\n")  # PEMs squeezed onto one line in env files
        return text.encode(), "EARSHOT_JWT_PRIVATE_KEY"
    if settings.jwt_private_key_file is not None:
        path = settings.jwt_private_key_file.expanduser()
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise SettingsError(f"EARSHOT_JWT_PRIVATE_KEY_FILE: cannot read {path}: {exc}") from exc
    return None, ""


def _parse_pem(pem: bytes, *, source: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SettingsError(f"{source} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise SettingsError(f"{source} holds a {type(key).__name__}; use Ed25519 or RSA")
    return key
