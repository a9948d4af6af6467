"""The local Entra ID stand-in refuses as Entra does: the AADSTS code, the OAuth error, the status, the place.

And whatever a client sends, however malformed, the answer is a 4xx, never a 5xx.
"""

from __future__ import annotations

import http.client
import random
import re
import ssl
import time
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from devhost.entra import LocalEntraStack
from localentra.directory import API_CLIENT_ID, APP_CLIENT_ID, OPSCTL_CLIENT_ID, TENANT
from tests.integration.entra_flows import (
    aadsts,
    authorize_url,
    entra_stack,
    pkce,
    post_token,
    redirected,
    sign_in,
    spa_code,
    token_url,
)

CONTROL_ROOM = "https://127.0.0.1:7071/control-room/"
API = "api://aml-reactor/user_impersonation"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalEntraStack]:
    with entra_stack() as running:
        running.entra.add_spa_redirect_uri(CONTROL_ROOM)
        yield running
        assert running.entra.failures == [], "a request made the stand-in fail"


def spa_redeem(stack: LocalEntraStack, code: str, verifier: str | None, **headers: str) -> tuple[int, str, int]:
    form = {"client_id": API_CLIENT_ID, "grant_type": "authorization_code", "code": code, "redirect_uri": CONTROL_ROOM,
            **({"code_verifier": verifier} if verifier else {})}
    return aadsts(post_token(stack, form, **headers))


def device(stack: LocalEntraStack, client_id: str = OPSCTL_CLIENT_ID, scope: str = API) -> dict[str, str]:
    with stack.session() as session:
        return dict(session.post(f"{stack.authority}/oauth2/v2.0/devicecode", timeout=30,
                                 data={"client_id": client_id, "scope": scope}).json())


def test_a_wrong_password_or_unknown_user_shows_the_form_again(stack: LocalEntraStack) -> None:
    params = {"client_id": API_CLIENT_ID, "response_type": "code", "redirect_uri": CONTROL_ROOM, "scope": API,
              "code_challenge": pkce()[1], "code_challenge_method": "S256", "login_hint": '"><script>x</script>'}
    wrong = sign_in(stack, params, "alice", password="not-alices")
    assert wrong.status_code == 400 and "AADSTS50126" in wrong.text and "Location" not in wrong.headers
    unknown = sign_in(stack, params, "mallory@contoso.test", password="x")
    assert unknown.status_code == 400 and "AADSTS50034" in unknown.text
    with stack.session() as session:
        page = session.get(authorize_url(stack), params=params, timeout=30)
    assert "<script>x" not in page.text and "&quot;&gt;&lt;script&gt;x" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("change", "code"), [
    ({"redirect_uri": "https://evil.example/callback"}, 50011),
    ({"client_id": "00000000-0000-0000-0000-00000000beef"}, 700016),
    ({"redirect_uri": ""}, 900971),
])
def test_who_asks_and_where_to_are_checked_on_a_page_that_redirects_nowhere(
    stack: LocalEntraStack, change: dict[str, str], code: int
) -> None:
    params = {"client_id": API_CLIENT_ID, "response_type": "code", "redirect_uri": CONTROL_ROOM, "scope": API, **change}
    with stack.session() as session:
        page = session.get(authorize_url(stack), params=params, allow_redirects=False, timeout=30)
    assert page.status_code == 400 and f"AADSTS{code}" in page.text and "Location" not in page.headers


@pytest.mark.parametrize(("change", "error", "code"), [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request", 9002325),
    ({"code_challenge_method": "plain"}, "invalid_request", 9002325),
    ({"code_challenge": "short"}, "invalid_request", 501491),
    ({"scope": "api://unknown-api/.default"}, "invalid_resource", 500011),
    ({"scope": "api://aml-reactor/.default api://aml-reactor/user_impersonation"}, "invalid_scope", 70011),
    ({"response_type": "token"}, "unsupported_response_type", 70005),
    ({"prompt": "none"}, "login_required", 50058),
])
def test_other_faults_go_back_to_the_redirect_uri(
    stack: LocalEntraStack, change: dict[str, str | None], error: str, code: int
) -> None:
    params = {"client_id": API_CLIENT_ID, "response_type": "code", "redirect_uri": CONTROL_ROOM, "scope": API,
              "code_challenge": pkce()[1], "code_challenge_method": "S256", "state": "st", "response_mode": "fragment"}
    params = {name: value for name, value in {**params, **change}.items() if value is not None}
    with stack.session() as session:
        answer = redirected(session.get(authorize_url(stack), params=params, allow_redirects=False, timeout=30))
    assert (answer["error"], answer["state"]) == (error, "st")
    assert answer["error_description"].startswith(f"AADSTS{code}: ")


def test_pkce_the_redirect_uri_single_use_and_origin_are_enforced_at_redemption(stack: LocalEntraStack) -> None:
    scope = f"{API} openid"
    code, verifier, _ = spa_code(stack, "bob", scope, CONTROL_ROOM)
    assert spa_redeem(stack, code, verifier) == (400, "invalid_request", 9002327)
    assert spa_redeem(stack, code, "x" * 43, Origin="https://127.0.0.1:7071") == (400, "invalid_grant", 501481)
    assert spa_redeem(stack, code, verifier, Origin="https://127.0.0.1:7071") == (400, "invalid_grant", 54005)
    code, verifier, _ = spa_code(stack, "bob", scope, CONTROL_ROOM)
    assert spa_redeem(stack, code, None, Origin="https://127.0.0.1:7071") == (400, "invalid_grant", 50148)
    code, verifier, _ = spa_code(stack, "bob", scope, CONTROL_ROOM)
    assert spa_redeem(stack, code, verifier, Origin="https://127.0.0.1:7071")[0] == 200
    assert spa_redeem(stack, code, verifier, Origin="https://127.0.0.1:7071") == (400, "invalid_grant", 54005)
    code, verifier, _ = spa_code(stack, "bob", scope, CONTROL_ROOM)
    stack.entra.sessions.codes[code].expires = time.time() - 1
    assert spa_redeem(stack, code, verifier, Origin="https://127.0.0.1:7071") == (400, "invalid_grant", 70008)
    verifier, challenge = pkce()
    answer = redirected(sign_in(stack, {"client_id": OPSCTL_CLIENT_ID, "response_type": "code", "scope": API,
                                        "redirect_uri": "http://localhost:9000", "code_challenge": challenge,
                                        "code_challenge_method": "S256"}, "carol"))
    form = {"client_id": OPSCTL_CLIENT_ID, "grant_type": "authorization_code", "code": answer["code"],
            "redirect_uri": "http://localhost:9000", "code_verifier": verifier}
    assert aadsts(post_token(stack, form, Origin="https://elsewhere")) == (400, "invalid_request", 9002326)
    assert aadsts(post_token(stack, {**form, "redirect_uri": "http://localhost:9001"}))[2] == 500112
    assert aadsts(post_token(stack, {**form, "client_secret": "s"})) == (401, "invalid_client", 700025)


def test_client_credentials_refusals(stack: LocalEntraStack) -> None:
    credential = ClientSecretCredential(TENANT, APP_CLIENT_ID, "not-the-secret", authority=stack.base_url,
                                        disable_instance_discovery=True, connection_verify=str(stack.ca_file))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential.get_token("https://management.azure.com/.default")
    form = {"client_id": APP_CLIENT_ID, "grant_type": "client_credentials", "client_secret": stack.app_client_secret}
    answer = post_token(stack, {**form, "client_secret": "wrong", "scope": "https://ml.azure.com/.default"},
                        **{"client-request-id": "req-42"})
    body = answer.json()
    assert aadsts(answer) == (401, "invalid_client", 7000215)
    assert body["correlation_id"] == "req-42" and answer.headers["client-request-id"] == "req-42"
    assert re.fullmatch(r"AADSTS7000215: .+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: req-42\r\n"
                        r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["error_description"], re.DOTALL)
    assert {"timestamp", "trace_id", "error_uri"} <= body.keys()
    assert aadsts(post_token(stack, {**form, "scope": "https://ml.azure.com/user_impersonation"}))[2] == 1002012
    assert aadsts(post_token(stack, {**form, "scope": "https://unknown.example/.default"})) == (
        400, "invalid_resource", 500011)
    assert aadsts(post_token(stack, {**form, "scope": "https://ml.azure.com/.default api://aml-reactor/.default"}))[
        2] == 28000
    assert aadsts(post_token(stack, {**form, "scope": "https://ml.azure.com/.default"}, Origin="https://x"))[2] == (
        9002326)
    no_secret = {"client_id": APP_CLIENT_ID, "grant_type": "client_credentials", "scope": "https://ml.azure.com/.default"}
    assert aadsts(post_token(stack, no_secret)) == (401, "invalid_client", 7000218)


def test_the_device_code_flow_refusals(stack: LocalEntraStack) -> None:
    flow = device(stack)
    assert flow["expires_in"] == 900 and flow["interval"] == 5
    assert flow["message"] == (f"To sign in, use a web browser to open the page {stack.base_url}/devicelogin and enter "
                               f"the code {flow['user_code']} to authenticate.")
    poll = {"client_id": OPSCTL_CLIENT_ID, "grant_type": DEVICE, "device_code": flow["device_code"]}
    assert aadsts(post_token(stack, poll)) == (400, "authorization_pending", 70016)
    stack.entra.sessions.devices[flow["device_code"]].expires = time.time() - 1
    assert aadsts(post_token(stack, poll)) == (400, "expired_token", 70020)
    assert aadsts(post_token(stack, {**poll, "device_code": "nope"})) == (400, "bad_verification_code", 70018)
    declined = device(stack)
    with stack.session() as session:
        session.post(f"{stack.base_url}/devicelogin", data={"code": declined["user_code"], "action": "decline"},
                     timeout=30)
        again = session.post(f"{stack.base_url}/devicelogin", timeout=30, data={
            "code": declined["user_code"], "username": "alice", "password": "alice-local-password"})
    assert again.status_code == 400 and "AADSTS90120" in again.text
    assert aadsts(post_token(stack, {**poll, "device_code": declined["device_code"]}))[1] == "authorization_declined"
    spa = device(stack, client_id=API_CLIENT_ID)
    stack.complete_device_login(spa["user_code"], "alice")
    assert aadsts(post_token(stack, {**poll, "client_id": API_CLIENT_ID, "device_code": spa["device_code"]})) == (
        401, "invalid_client", 7000218)
    assert (device(stack, scope="https://unknown.example/.default")["error_codes"]) == [500011]
    with pytest.raises(RuntimeError, match="refused"):
        stack.complete_device_login("NOSUCHCOD", "alice")


def test_unknown_tenants_and_wrong_methods(stack: LocalEntraStack) -> None:
    with stack.session() as session:
        for url in (f"{stack.base_url}/contoso.example/v2.0/.well-known/openid-configuration",
                    f"{stack.base_url}/consumers/discovery/v2.0/keys"):
            answer = session.get(url, timeout=30)
            assert aadsts(answer) == (400, "invalid_tenant", 90002) and "Tenant '" in answer.json()["error_description"]
        wrong = session.get(token_url(stack), timeout=30)
        assert aadsts(wrong) == (400, "invalid_request", 900561)
        json_body = session.post(token_url(stack), json={"grant_type": "client_credentials"}, timeout=30)
        assert aadsts(json_body) == (400, "invalid_request", 900144)
        preflight = session.options(token_url(stack), timeout=30, headers={
            "Origin": "https://127.0.0.1:7071", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"


MALFORMED_BODIES = [b"\xff\xfe\x00garbage", b"%ff%fe=1", b"grant_type=a&grant_type=b", b"=" * 5000,
                    b"&".join(b"f%d=1" % n for n in range(500)), b"client_id=%00", b"\x00" * 100,
                    b"grant_type=client_credentials&client_id=" + b"9" * 60000]
FIELDS = ["grant_type", "client_id", "code", "scope", "redirect_uri", "code_verifier", "device_code", "client_secret",
          "refresh_token", "response_type", "localentra_signin", "username", "password", "code_challenge"]
VALUES = ["", "%ff", "authorization_code", "client_credentials", API_CLIENT_ID, "1",
          "api%3A%2F%2Faml-reactor%2F.default", "openid", "x" * 300, "%00", "%E2%80%AE", "S256",
          "https%3A%2F%2Fmanagement.azure.com%2F%2F.default"]
PATHS = ["/oauth2/v2.0/token", "/oauth2/v2.0/devicecode", "/oauth2/v2.0/authorize",
         "/v2.0/.well-known/openid-configuration", "/discovery/v2.0/keys"]


def test_a_malformed_request_sweep_is_answered_4xx_never_5xx(stack: LocalEntraStack) -> None:
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    port = int(stack.base_url.rsplit(":", 1)[1])

    def raw(method: str, target: str, body: bytes = b"", **headers: str) -> int:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in {"Content-Type": "application/x-www-form-urlencoded",
                                "Content-Length": str(len(body)), **headers}.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            return connection.getresponse().status
        finally:
            connection.close()

    refused, answered = [], []  # malformed requests; requests that merely carry odd values
    for path in PATHS:
        target = f"/{TENANT}{path}"
        refused += [raw("POST", target, body) for body in MALFORMED_BODIES]
        refused += [raw("GET", target + "?" + query) for query in ("%ff=1", "a=1&a=2", "b=%00")]
        refused += [raw("POST", target, b"a=1", **{"Content-Length": "-1"}), raw("POST", target, b"a", **{
            "Content-Length": "abc"}), raw("BREW", target)]
        answered += [raw("GET", target + "?" + query) for query in ("client_id=%zz", "x" * 8000)]
        answered += [raw("PATCH", target), raw("POST", target, b"x=1", **{"Authorization": "Basic !!!"})]
    refused.append(raw("POST", f"/{TENANT}/oauth2/v2.0/token", b"x" * 70_000))
    refused += [raw("GET", path) for path in ("/", "/%00", "/../../etc/passwd", "/" + "a/" * 3000, "//x",
                                              "/common/discovery/instance?authorization_endpoint=%ff")]
    refused.append(raw("POST", "/devicelogin", b"code=\xff&username=\x00"))
    fuzz = random.Random(7)
    for _ in range(60):
        body = bytes(fuzz.randrange(256) for _ in range(fuzz.randrange(1, 300)))
        refused.append(raw("POST", f"/{TENANT}{fuzz.choice(PATHS[:3])}", body))
        pairs = "&".join(f"{fuzz.choice(FIELDS)}={fuzz.choice(VALUES)}" for _ in range(fuzz.randrange(1, 8)))
        answered.append(raw("POST", f"/{TENANT}{fuzz.choice(PATHS[:3])}", pairs.encode()))
    assert refused and all(400 <= status < 500 for status in refused), refused
    assert all(status < 500 for status in answered), answered
    assert 413 in refused
    assert stack.entra.failures == []


def test_a_redirect_uri_with_a_line_break_is_never_the_registered_one(stack: LocalEntraStack) -> None:
    for uri in ("http://localhost:8400\r\nSet-Cookie: x=1", "http://local\nhost:8400", "http://localhost:8400/\t"):
        params = {"client_id": OPSCTL_CLIENT_ID, "response_type": "code", "redirect_uri": uri, "scope": API}
        with stack.session() as session:
            page = session.get(authorize_url(stack), params=params, allow_redirects=False, timeout=30)
        assert page.status_code == 400 and "AADSTS50011" in page.text and "Location" not in page.headers
