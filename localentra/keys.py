"""The tenant's token signing keys and the JSON Web Key Set that publishes them.

Entra signs with RSA 2048-bit keys (RS256), each with a self-signed X.509 certificate, and
names a key by the certificate's SHA-1 thumbprint in base64url: that is both `kid` and
`x5t`. Its JWKS lists several keys at once (`kty`, `use`, `kid`, `x5t`, `n`, `e`, `x5c`,
`issuer`) so that tokens signed before a rollover still validate
(learn.microsoft.com/entra/identity-platform/signing-key-rollover; the keys document of
`login.microsoftonline.com/common/discovery/v2.0/keys`, as kept in panva/wellknown
`issuers/entra-common`). Here `rotate()` adds a key that signs from then on while the older
ones stay published, and `retire_oldest()` stops publishing the oldest.
"""

from __future__ import annotations

import base64
import datetime
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def kid(self) -> str:
        """The certificate's SHA-1 thumbprint, base64url: Entra's `kid` and `x5t` alike."""
        return b64url(self.certificate.fingerprint(hashes.SHA1()))

    @property
    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwk(self, issuer: str | None) -> dict[str, object]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": _uint(numbers.n), "e": _uint(numbers.e),
            "x5c": [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()],
            **({"issuer": issuer} if issuer else {}),
        }


def new_signing_key() -> SigningKey:
    """An RSA 2048-bit key with a self-signed certificate valid five years, as Entra's are."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localentra.accesscontrol.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=5 * 365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key, certificate)


class KeySet:
    """The published keys, oldest first; the newest signs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = [new_signing_key()]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    @property
    def kids(self) -> list[str]:
        with self._lock:
            return [key.kid for key in self._keys]

    def rotate(self) -> SigningKey:
        """Add a key that signs from now on; the others stay published."""
        key = new_signing_key()
        with self._lock:
            self._keys.append(key)
        return key

    def retire_oldest(self) -> str:
        """Stop publishing the oldest key (never the one that signs); its kid."""
        with self._lock:
            if len(self._keys) < 2:
                raise ValueError("the only key signs: rotate before retiring one")
            return self._keys.pop(0).kid

    def jwks(self, issuer: str | None) -> dict[str, object]:
        """The JWKS; each key names `issuer` (the v2.0 keys document) or none (v1.0's)."""
        with self._lock:
            return {"keys": [key.jwk(issuer) for key in self._keys]}
