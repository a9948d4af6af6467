"""The device authorization grant: `/{tenant}/oauth2/v2.0/devicecode` and the page at `/devicelogin`.

learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code: a client posts its
`client_id` and `scope`; the answer is a `device_code`, a `user_code`, the `verification_uri`,
`expires_in` 900, `interval` 5 and a `message` ("To sign in, use a web browser to open the page
{verification_uri} and enter the code {user_code} to authenticate."); no
`verification_uri_complete` ("not included or supported at this time"). The scopes are checked
here as at /authorize (an unknown resource is AADSTS500011). Whether the client may use the
flow at all (public client flows allowed) is checked when it polls /token, where Entra refuses
a client that is not public with AADSTS7000218 (Azure/azure-sdk-for-go#22386).

At the verification page a person enters the code, their username and password; "Cancel"
declines, and the device's next poll is answered `authorization_declined`. A code already
used is refused (AADSTS90120), an unknown one too (AADSTS70018), an expired one as expired.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from localentra import pages
from localentra.directory import TENANT_DOMAIN
from localentra.errors import EntraError, Reply, missing
from localentra.scopes import parse as parse_scopes
from localentra.sessions import DEVICE_INTERVAL, DEVICE_LIFETIME

if TYPE_CHECKING:
    from localentra.protocol import Request
    from localentra.service import LocalEntra

VERIFICATION_PATH = "/devicelogin"


def device_code(entra: LocalEntra, request: Request, tenant: str) -> dict[str, object]:
    form = request.form
    client_id = form.get("client_id")
    if not client_id:
        raise missing("client_id")
    if entra.directory.application(client_id) is None:
        raise EntraError("unauthorized_client", 700016, client_id, tenant)
    if not form.get("scope"):
        raise missing("scope")
    scopes = parse_scopes(entra.directory, form["scope"], tenant)
    device = entra.sessions.new_device(client_id.lower(), scopes)
    uri = entra.base_url + VERIFICATION_PATH
    return {
        "user_code": device.user_code, "device_code": device.device_code, "verification_uri": uri,
        "expires_in": DEVICE_LIFETIME, "interval": DEVICE_INTERVAL,
        "message": f"To sign in, use a web browser to open the page {uri} and enter the code {device.user_code} "
                   "to authenticate.",
    }


def device_login(entra: LocalEntra, request: Request) -> Reply:
    """The verification page: the form (GET), or a person's answer to it (POST)."""
    if request.method != "POST":
        return pages.device_login(VERIFICATION_PATH, code=request.query.get("otc", ""))
    form = request.form
    code, username = form.get("code", ""), form.get("username", "")

    def again(error: EntraError) -> Reply:
        return pages.device_login(VERIFICATION_PATH, code, username, f"AADSTS{error.code}: {error.message}",
                                  status=400)

    device = entra.sessions.device_by_user_code(code)
    if device is None:
        return again(EntraError("invalid_grant", 70018))
    client = entra.directory.application(device.client_id)
    app_name = client.display_name if client else device.client_id
    with entra.sessions.lock:
        if device.expires < time.time():
            return again(EntraError("expired_token", 70020))
        if device.user is not None or device.declined:
            return again(EntraError("invalid_request", 90120))
        if form.get("action") == "decline":
            device.declined = True
            return pages.message("Sign in canceled", f"You declined to sign in to {app_name} on your device.")
        user = entra.directory.user(username)
        if user is None:
            return again(EntraError("invalid_grant", 50034, username, TENANT_DOMAIN))
        if not hmac.compare_digest(user.password.encode(), form.get("password", "").encode()):
            return again(EntraError("invalid_grant", 50126))
        device.user = user
    return pages.message("Signed in", f"You have signed in to the {app_name} application on your device. "
                                      "You may now close this window.")
