"""Refusals in Entra's shape, and the replies the service answers with.

Entra's token, device code and discovery endpoints refuse with a JSON body of `error` (the
OAuth 2.0 code), `error_description` ("AADSTSnnnnn: message" then the trace id, correlation
id and time, each on its own CRLF line), `error_codes`, `timestamp`, `trace_id`,
`correlation_id` and `error_uri`; HTTP 400, or 401 when the client failed to authenticate
(`invalid_client`). Shape: learn.microsoft.com/entra/identity-platform/reference-error-codes
("Handling error codes in your application") and v2-oauth2-auth-code-flow ("Error response");
the 401 of `invalid_client` as recorded in public issues, e.g. AzureAD/microsoft-identity-web#3212.
The codes and messages used are in AADSTS_MESSAGES, each from that reference or, where it says
nothing, from a public issue quoting Entra's answer.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

# AADSTS code -> message. `{}` fields are filled per refusal.
AADSTS_MESSAGES = {
    28000: "Provided value for the input parameter scope is not valid because it contains more than one resource. "
           "Scope {} is not valid.",
    50011: "The redirect URI '{}' specified in the request does not match the redirect URIs configured for the "
           "application '{}'. Make sure the redirect URI sent in the request matches one added to your application "
           "in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix "
           "this.",
    50034: "The user account {} does not exist in the '{}' directory. To sign into this application, the account "
           "must be added to the directory.",
    50058: "A silent sign-in request was sent but no user is signed in.",
    50126: "Error validating credentials due to invalid username or password.",
    50148: "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
    501481: "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
    501491: "Invalid size of Code_Challenge parameter.",
    50149: "Invalid Code_Challenge_method parameter.",
    500011: "The resource principal named {} was not found in the tenant named {}. This can happen if the application "
            "has not been installed by the administrator of the tenant or consented to by any user in the tenant. "
            "You might have sent your authentication request to the wrong tenant.",
    500112: "The reply address '{}' does not match the reply address '{}' provided when requesting Authorization "
            "code.",
    54005: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
           "refresh token.",
    65001: "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an "
           "interactive authorization request for this user and resource.",
    65004: "User declined to consent to access the app.",
    70000: "Provided grant is invalid or malformed.",
    70003: "The app requested an unsupported grant type '{}'.",
    70005: "response_type '{}' is not enabled for the application.",
    70007: "The application '{}' does not support the response_mode '{}'.",
    70008: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
           "authorization request for this user and resource.",
    70011: "The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.{}",
    70016: "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    70018: "Invalid verification code due to User typing in wrong user code for device code flow. Authorization is "
           "not approved.",
    70020: "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
    700084: "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited lifetime "
            "of 1.00:00:00, which cannot be extended. It is now expired and a new sign in request must be sent by the "
            "SPA to the sign in page. The token was issued on {}.",
    700016: "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application "
            "has not been installed by the administrator of the tenant or consented to by any user in the tenant. "
            "You may have sent your authentication request to the wrong tenant.",
    700025: "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    7000215: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
             "not the client secret ID, for a secret added to app '{}'.",
    7000218: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    1002012: "The provided value for scope {} is not valid. Client credential flows must have a scope value with "
             "/.default suffixed to the resource identifier (application ID URI).",
    90002: "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct "
           "cloud. Check with your subscription administrator, this may happen if there are no active subscriptions "
           "for the tenant.",
    50049: "Unknown or invalid instance.",
    90120: "The request was already authorized or declined.",
    900144: "The request body must contain the following parameter: '{}'.",
    900561: "The endpoint only accepts {} requests. Received a {} request.",
    900971: "No reply address provided.",
    9002313: "Invalid request. Request is malformed or invalid.",
    9002325: "Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
    9002326: "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type.",
    9002327: "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin "
             "requests.",
}


class EntraError(Exception):
    """A refusal: the OAuth `error`, the AADSTS code and its message's fields, the HTTP status."""

    def __init__(self, error: str, code: int, *fields: object, status: int | None = None) -> None:
        self.error, self.code = error, code
        self.message = AADSTS_MESSAGES[code].format(*fields)
        self.status = status if status is not None else (401 if error == "invalid_client" else 400)
        super().__init__(f"{error}: AADSTS{code}: {self.message}")

    def body(self, base_url: str, correlation_id: str | None = None) -> dict[str, object]:
        """The JSON body Entra answers this refusal with."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.message}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{base_url}/error?code={self.code}",
        }


def missing(name: str) -> EntraError:
    return EntraError("invalid_request", 900144, name)


def malformed() -> EntraError:
    return EntraError("invalid_request", 9002313)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: object, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(value).encode(), headers=dict(headers or {}))

    @classmethod
    def html(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), "text/html; charset=utf-8", dict(headers or {}))
