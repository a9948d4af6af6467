"""The local Entra ID stand-in's flows against real clients: MSAL Python, azure-identity, a browser's HTTP.

Every token is checked as a resource would check it: PyJWT against the published JWKS, with
the expected issuer and audience, then its claims.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import jwt
import msal
import pytest
from azure.identity import ClientSecretCredential
from cryptography import x509

from devhost.entra import LocalEntraStack
from localentra.directory import API_CLIENT_ID, OPSCTL_CLIENT_ID, TENANT, USERS, User
from tests.integration.entra_flows import (
    entra_stack,
    hidden_fields,
    jwks,
    pkce,
    post_token,
    redirected,
    sign_in,
    spa_code,
    v1_issuer,
    v2_issuer,
    validate,
)

CONTROL_ROOM = "https://127.0.0.1:7071/api/control-room"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalEntraStack]:
    with entra_stack() as running:
        running.entra.add_spa_redirect_uri(CONTROL_ROOM)
        yield running


def test_discovery_names_the_tenant_its_endpoints_and_its_keys(stack: LocalEntraStack) -> None:
    with stack.session() as session:
        answer = session.get(f"{stack.authority}/v2.0/.well-known/openid-configuration", timeout=30)
        common = session.get(f"{stack.base_url}/common/v2.0/.well-known/openid-configuration", timeout=30).json()
        v1 = session.get(f"{stack.authority}/.well-known/openid-configuration", timeout=30).json()
    config = answer.json()
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert config["issuer"] == v2_issuer(stack)
    assert config["token_endpoint"] == f"{stack.authority}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{stack.authority}/oauth2/v2.0/authorize"
    assert config["device_authorization_endpoint"] == f"{stack.authority}/oauth2/v2.0/devicecode"
    assert config["jwks_uri"] == f"{stack.authority}/discovery/v2.0/keys"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert config["response_modes_supported"] == ["query", "fragment", "form_post"]
    assert common["issuer"] == f"{stack.base_url}/{{tenantid}}/v2.0" and common["tenant_region_scope"] is None
    assert v1["issuer"] == v1_issuer(stack)
    keys = jwks(stack)["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert {key["kty"], key["use"], key["issuer"]} == {"RSA", "sig", v2_issuer(stack)}
    assert key["kid"] == key["x5t"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
    numbers = certificate.public_key().public_numbers()  # type: ignore[union-attr]
    assert jwt.PyJWK(key).key.public_numbers() == numbers


def test_instance_discovery_validates_the_authority_for_msal(stack: LocalEntraStack) -> None:
    app = msal.PublicClientApplication(OPSCTL_CLIENT_ID, authority=stack.authority, http_client=stack.session(),
                                       instance_discovery=f"{stack.base_url}/common/discovery/instance")
    flow = app.initiate_device_flow(scopes=["api://aml-reactor/user_impersonation"])
    stack.complete_device_login(flow["user_code"], "dave")
    result = app.acquire_token_by_device_flow(flow)
    assert validate(stack, result["access_token"], API_CLIENT_ID, v2_issuer(stack))["upn"] == "dave@contoso.test"
    with stack.session() as session:
        other = session.get(f"{stack.base_url}/common/discovery/instance", timeout=30, params={
            "api-version": "1.1", "authorization_endpoint": "https://login.example.com/x/oauth2/v2.0/authorize"})
    assert (other.status_code, other.json()["error"], other.json()["error_codes"]) == (400, "invalid_instance", [50049])


@pytest.mark.parametrize("user", USERS, ids=lambda user: user.name)
def test_device_code_through_msal_gives_each_person_their_roles(stack: LocalEntraStack, user: User) -> None:
    person = user
    claims = validate(stack, stack.token_for(person.name), API_CLIENT_ID, v2_issuer(stack))
    assert (claims["oid"], claims["upn"], claims["preferred_username"]) == (person.oid, person.upn, person.upn)
    assert claims["roles"] == list(person.roles) and claims["scp"] == "user_impersonation"
    assert (claims["ver"], claims["tid"], claims["azp"], claims["azpacr"]) == ("2.0", TENANT, OPSCTL_CLIENT_ID, "0")
    assert claims["exp"] - claims["iat"] == 3600 and claims["name"] == person.display_name
    assert stack.token_for(person.name) == stack.token_for(person.name), "cached until near its expiry"


def test_a_first_party_resource_gets_a_v1_token(stack: LocalEntraStack) -> None:
    token = stack.token_for("carol", ["https://management.azure.com/.default"])
    claims = validate(stack, token, "https://management.azure.com", v1_issuer(stack))
    assert jwt.get_unverified_header(token)["x5t"] == jwt.get_unverified_header(token)["kid"]
    assert (claims["ver"], claims["upn"], claims["unique_name"]) == ("1.0", "carol@contoso.test", "carol@contoso.test")
    assert (claims["appid"], claims["scp"]) == (OPSCTL_CLIENT_ID, "user_impersonation")
    assert "roles" not in claims and "azp" not in claims


def test_the_control_room_signs_in_with_pkce_and_refreshes(stack: LocalEntraStack) -> None:
    scope = "api://aml-reactor/user_impersonation openid profile offline_access"
    code, verifier, answer = spa_code(stack, "bob", scope, CONTROL_ROOM)
    assert answer["state"] == "s-1"
    padded = answer["client_info"] + "=" * (-len(answer["client_info"]) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {"uid": stack.entra.directory.users["bob"].oid,
                                                            "utid": TENANT}
    tokens = post_token(stack, {"client_id": API_CLIENT_ID, "grant_type": "authorization_code", "code": code,
                                "redirect_uri": CONTROL_ROOM, "code_verifier": verifier, "client_info": "1",
                                "scope": f"{API_CLIENT_ID}/.default openid profile offline_access"},
                        Origin="https://127.0.0.1:7071")
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["Access-Control-Allow-Origin"] == "*"
    body = tokens.json()
    assert (body["token_type"], body["scope"], body["expires_in"]) == ("Bearer", f"{API_CLIENT_ID}/user_impersonation",
                                                                      3599)
    claims = validate(stack, body["access_token"], API_CLIENT_ID, v2_issuer(stack))
    assert (claims["roles"], claims["azp"], claims["upn"]) == (["MLOps.Approver"], API_CLIENT_ID, "bob@contoso.test")
    identity = validate(stack, body["id_token"], API_CLIENT_ID, v2_issuer(stack))
    assert (identity["nonce"], identity["oid"], identity["ver"]) == ("n-1", claims["oid"], "2.0")
    assert identity["aud"] == API_CLIENT_ID and "scp" not in identity
    refreshed = post_token(stack, {"client_id": API_CLIENT_ID, "grant_type": "refresh_token",
                                   "refresh_token": body["refresh_token"], "scope": "api://aml-reactor/.default"},
                           Origin="https://127.0.0.1:7071")
    assert refreshed.status_code == 200, refreshed.text
    again = validate(stack, refreshed.json()["access_token"], API_CLIENT_ID, v2_issuer(stack))
    assert again["oid"] == claims["oid"] and again["uti"] != claims["uti"]
    assert refreshed.json()["refresh_token"] != body["refresh_token"]


def test_opsctl_signs_in_through_a_loopback_redirect_for_resource_manager(stack: LocalEntraStack) -> None:
    verifier, challenge = pkce()
    answer = redirected(sign_in(stack, {
        "client_id": OPSCTL_CLIENT_ID, "response_type": "code", "redirect_uri": "http://localhost:8400",
        "scope": "https://management.azure.com//.default offline_access", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "x"}, "erin"))
    tokens = post_token(stack, {"client_id": OPSCTL_CLIENT_ID, "grant_type": "authorization_code",
                                "code": answer["code"], "redirect_uri": "http://localhost:8400",
                                "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    assert "id_token" not in tokens.json() and "refresh_token" in tokens.json()
    assert tokens.json()["scope"] == "https://management.azure.com//user_impersonation"
    claims = validate(stack, tokens.json()["access_token"], "https://management.azure.com/", v1_issuer(stack))
    assert claims["upn"] == "erin@contoso.test"


def test_the_function_app_gets_app_tokens_through_azure_identity(stack: LocalEntraStack) -> None:
    def credential() -> ClientSecretCredential:
        return ClientSecretCredential(TENANT, stack.app_client_id, stack.app_client_secret, authority=stack.base_url,
                                      disable_instance_discovery=True, connection_verify=str(stack.ca_file))

    arm = validate(stack, credential().get_token("https://management.azure.com/.default").token,
                   "https://management.azure.com", v1_issuer(stack))
    application = stack.entra.directory.applications[stack.app_client_id]
    assert (arm["idtyp"], arm["appid"], arm["oid"], arm["sub"]) == ("app", stack.app_client_id,
                                                                    application.principal_id, application.principal_id)
    assert arm["appidacr"] == "1" and "upn" not in arm and "scp" not in arm
    api = validate(stack, credential().get_token("api://aml-reactor/.default").token, API_CLIENT_ID, v2_issuer(stack))
    assert (api["idtyp"], api["azp"], api["azpacr"]) == ("app", stack.app_client_id, "1")
    assert "roles" not in api and "scp" not in api
    stack.entra.directory.grant_app_role(stack.app_client_id, "MLOps.Operator")
    granted = validate(stack, credential().get_token(f"{API_CLIENT_ID}/.default").token, API_CLIENT_ID,
                       v2_issuer(stack))
    assert granted["roles"] == ["MLOps.Operator"]


def test_after_a_rotation_new_tokens_carry_the_new_key_and_both_keys_are_published() -> None:
    with entra_stack() as stack:
        _rotate_then_retire(stack)


def _rotate_then_retire(stack: LocalEntraStack) -> None:
    before = stack.token_for("alice", ["https://ml.azure.com/.default"])
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = stack.entra.rotate_signing_key()
    after = stack.token_for("alice", ["https://storage.azure.com/.default"])
    assert jwt.get_unverified_header(after)["kid"] == new_kid != old_kid
    assert [key["kid"] for key in jwks(stack)["keys"]] == [old_kid, new_kid]
    assert validate(stack, before, "https://ml.azure.com", v1_issuer(stack))["upn"] == "alice@contoso.test"
    assert validate(stack, after, "https://storage.azure.com", v1_issuer(stack))["upn"] == "alice@contoso.test"
    assert stack.entra.retire_oldest_key() == old_kid
    assert [key["kid"] for key in jwks(stack)["keys"]] == [new_kid]
    with pytest.raises(jwt.InvalidTokenError):
        validate(stack, before, "https://ml.azure.com", v1_issuer(stack))


def test_form_post_hands_the_code_back_in_a_self_submitting_form_and_sign_out_returns(stack: LocalEntraStack) -> None:
    verifier, challenge = pkce()
    page = sign_in(stack, {"client_id": API_CLIENT_ID, "response_type": "code", "redirect_uri": CONTROL_ROOM,
                           "scope": "api://aml-reactor/.default", "response_mode": "form_post", "state": "fp",
                           "code_challenge": challenge, "code_challenge_method": "S256"}, "alice")
    assert page.status_code == 200 and f'action="{CONTROL_ROOM}"' in page.text
    assert "form-action https://127.0.0.1:7071;" in page.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in page.headers["Content-Security-Policy"]
    fields = hidden_fields(page.text)
    assert fields["state"] == "fp"
    tokens = post_token(stack, {"client_id": API_CLIENT_ID, "grant_type": "authorization_code", "code": fields["code"],
                                "redirect_uri": CONTROL_ROOM, "code_verifier": verifier}, Origin="https://127.0.0.1:7071")
    assert validate(stack, tokens.json()["access_token"], API_CLIENT_ID, v2_issuer(stack))["roles"] == ["MLOps.Reader"]
    with stack.session() as session:
        back = session.get(f"{stack.authority}/oauth2/v2.0/logout", allow_redirects=False, timeout=30,
                           params={"post_logout_redirect_uri": CONTROL_ROOM})
        elsewhere = session.get(f"{stack.authority}/oauth2/v2.0/logout", allow_redirects=False, timeout=30,
                                params={"post_logout_redirect_uri": "https://evil.example/"})
    assert (back.status_code, back.headers["Location"]) == (302, CONTROL_ROOM)
    assert elsewhere.status_code == 200 and "Location" not in elsewhere.headers


def test_the_sign_in_form_may_send_the_browser_back_to_the_app(stack: LocalEntraStack) -> None:
    """Chromium holds the redirect answering a form to the page's form-action: without the app's origin there,
    a person who signs in is stopped on the way back (found by the control room's browser test)."""
    _, challenge = pkce()
    with stack.session() as session:
        page = session.get(f"{stack.authority}/oauth2/v2.0/authorize", timeout=30, params={
            "client_id": stack.api_client_id, "response_type": "code", "redirect_uri": CONTROL_ROOM,
            "scope": "openid", "response_mode": "fragment", "code_challenge": challenge,
            "code_challenge_method": "S256"})
    assert page.status_code == 200 and "<form" in page.text
    assert "form-action 'self' https://127.0.0.1:7071;" in page.headers["Content-Security-Policy"]
