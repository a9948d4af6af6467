"""The app's token verifier (shared/adapters/identity.py) against the local Entra ID stand-in, over HTTPS:
real tokens from real flows are accepted, and every forgery an attacker would try is refused.

The stand-in plays the tenant: OpenID discovery, the published keys (JWKS), the tokens. Forgeries are
made here, with PyJWT and keys of the test's own, or by editing a real token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.entra import LocalEntraStack, running_local_entra
from localaml.tls import make_certificates
from localentra.directory import API_CLIENT_ID, TENANT
from shared.adapters.identity import EntraTokens
from shared.domain.people import Role
from shared.domain.ports import IdentityUnavailable, TokenRefused


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEntraStack]:
    with running_local_entra(make_certificates(tmp_path_factory.mktemp("tls"))) as running:
        yield running


@pytest.fixture
def verifier(entra: LocalEntraStack, monkeypatch: pytest.MonkeyPatch) -> EntraTokens:
    """The verifier as the app makes it from its settings; it trusts the stand-in's CA as the app does."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra.ca_file))
    return EntraTokens(entra.base_url, TENANT, API_CLIENT_ID)


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def signed(entra: LocalEntraStack, claims: dict[str, Any], **header: Any) -> str:
    """`claims` signed with the tenant's current key: what only Entra can make (to test the checks after
    the signature's)."""
    key = entra.entra.keys.current
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid, **header})


def attacker_key() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_a_person_s_token_from_the_device_code_flow_is_verified_to_who_they_are(entra: LocalEntraStack,
                                                                                 verifier: EntraTokens) -> None:
    bob = verifier.verify(entra.token_for("bob"))
    directory_bob = entra.entra.directory.user("bob")
    assert directory_bob is not None
    assert (bob.oid, bob.upn, bob.name, bob.app_id) == (directory_bob.oid, "bob@contoso.test",
                                                        directory_bob.display_name, None)
    assert bob.roles == frozenset({Role.APPROVER.value}) and bob.holds(Role.READER) and not bob.holds(Role.OPERATOR)
    dave = verifier.verify(entra.token_for("dave"))
    assert dave.roles == frozenset({Role.READER.value}) and dave.oid != bob.oid


def test_an_application_s_token_is_an_application_not_a_person(entra: LocalEntraStack, verifier: EntraTokens) -> None:
    app = verifier.verify(entra.app_token(f"{API_CLIENT_ID}/.default"))
    assert app.app_id == entra.app_client_id and app.upn is None and app.principal == entra.app_client_id


@pytest.mark.parametrize("forgery", [
    "another key, same kid", "another key, another kid", "alg none", "HS256 with the public key",
    "roles added to the payload", "payload of another person", "truncated signature",
])
def test_forged_tokens_are_refused(entra: LocalEntraStack, verifier: EntraTokens, forgery: str) -> None:
    real = entra.token_for("dave")
    header, payload, signature = real.split(".")
    claims = claims_of(real)
    kid = jwt.get_unverified_header(real)["kid"]
    forged = {
        "another key, same kid": lambda: jwt.encode({**claims, "roles": ["MLOps.Admin"]}, attacker_key(),
                                                    algorithm="RS256", headers={"kid": kid}),
        "another key, another kid": lambda: jwt.encode(claims, attacker_key(), algorithm="RS256",
                                                       headers={"kid": "attacker"}),
        "alg none": lambda: f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}.",
        "HS256 with the public key": lambda: _hs256_with_public_key(entra, claims, kid),
        "roles added to the payload": lambda: f"{header}.{b64({**claims, 'roles': ['MLOps.Admin']})}.{signature}",
        "payload of another person": lambda: f"{header}.{entra.token_for('bob').split('.')[1]}.{signature}",
        "truncated signature": lambda: f"{header}.{payload}.{signature[:-8]}",
    }[forgery]()
    with pytest.raises(TokenRefused):
        verifier.verify(forged)


def _hs256_with_public_key(entra: LocalEntraStack, claims: dict[str, Any], kid: str) -> str:
    """The classic confusion: an HMAC keyed with the RSA public key the tenant publishes."""
    public = entra.entra.keys.current.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    import hashlib
    import hmac
    body = f"{header}.{b64(claims)}"
    mac = hmac.new(public, body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


@pytest.mark.parametrize(("change", "why"), [
    ({"aud": "00000000-0000-0000-0000-00000000beef"}, "Audience"),
    ({"aud": "https://management.azure.com"}, "Audience"),
    ({"iss": "https://login.microsoftonline.com/22222222-2222-2222-2222-222222222222/v2.0"}, "issuer"),
    ({"iss": None}, '"iss"'),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"tid": "33333333-3333-3333-3333-333333333333"}, "tenant"),
    ({"ver": "1.0"}, "v2 token"),
    ({"oid": None}, "oid"),
])
def test_a_well_signed_token_with_a_wrong_claim_is_refused(entra: LocalEntraStack, verifier: EntraTokens,
                                                           change: dict[str, Any], why: str) -> None:
    claims = {key: value for key, value in {**claims_of(entra.token_for("carol")), **change}.items()
              if value is not None}
    with pytest.raises(TokenRefused, match=why):
        verifier.verify(signed(entra, claims))


def test_a_token_for_another_app_is_refused(entra: LocalEntraStack, verifier: EntraTokens) -> None:
    arm = entra.token_for("bob", ["https://management.azure.com/.default"])
    with pytest.raises(TokenRefused):
        verifier.verify(arm)


@pytest.mark.parametrize("junk", ["", "abc", "a.b.c", "e30.e30.", "x" * 5000, "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"])
def test_junk_is_refused_without_an_error_of_its_own(verifier: EntraTokens, junk: str) -> None:
    with pytest.raises(TokenRefused):
        verifier.verify(junk)


def test_a_rotated_key_is_fetched_again_and_tokens_of_both_keys_verify(entra: LocalEntraStack,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A key id not seen yet fetches the keys again (at most once a minute in the app: no cooldown here)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra.ca_file))
    verifier = EntraTokens(entra.base_url, TENANT, API_CLIENT_ID, keys_cooldown=0)
    before = entra.token_for("dave")
    verifier.verify(before)  # the keys are cached now
    new_kid = entra.entra.rotate_signing_key()
    after = signed(entra, claims_of(before))
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert verifier.verify(after).oid == verifier.verify(before).oid


def test_without_the_tenant_s_keys_no_token_is_verified_and_it_says_why(entra: LocalEntraStack,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra.ca_file))
    nowhere = EntraTokens("https://127.0.0.1:9", TENANT, API_CLIENT_ID, timeout=2)
    with pytest.raises(IdentityUnavailable, match="discovery"):
        nowhere.verify(entra.token_for("dave"))
    wrong_issuer = EntraTokens(entra.base_url + "/", "44444444-4444-4444-4444-444444444444", API_CLIENT_ID)
    with pytest.raises((IdentityUnavailable, TokenRefused)):
        wrong_issuer.verify(entra.token_for("dave"))
