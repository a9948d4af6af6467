"""The pages a person sees: the sign-in form, the device code form, messages, the form_post hand-back.

Plain HTML, every value escaped (`html.escape`), served with a Content-Security-Policy that
allows nothing but posting forms back here (`default-src 'none'`), never framed
(`frame-ancestors 'none'`, X-Frame-Options DENY), as Entra's own sign-in pages refuse
framing (learn.microsoft.com/entra/identity-platform/reference-third-party-cookies-spas).
The form_post hand-back (response_mode=form_post, v2-oauth2-auth-code-flow) posts itself to
the redirect URI with one inline script, allowed by its hash alone.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import urlsplit

from localentra.errors import Reply

AUTO_SUBMIT = "document.forms[0].submit();"
CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _headers(csp: str = CSP) -> dict[str, str]:
    return {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>\n'
            f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def _hidden(values: dict[str, str]) -> str:
    return "\n".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in values.items())


def _error(message: str | None) -> str:
    return f'<p role="alert" id="error">{escape(message)}</p>' if message else ""


def sign_in(action: str, app_name: str, hidden: dict[str, str], username: str, error: str | None = None,
            status: int = 200) -> Reply:
    """The sign-in form of /authorize: the request's parameters ride along hidden."""
    body = (f"<p>to continue to {escape(app_name)}</p>\n{_error(error)}\n"
            f'<form method="post" action="{escape(action)}">\n{_hidden(hidden)}\n'
            '<input type="hidden" name="localentra_signin" value="1">\n'
            f'<label>Email or username <input name="username" autocomplete="username" value="{escape(username)}">'
            "</label>\n"
            '<label>Password <input type="password" name="password" autocomplete="current-password"></label>\n'
            '<button type="submit">Sign in</button>\n</form>')
    # Chromium holds the redirect that answers the form to form-action too: the app's redirect URI must be in it.
    target = urlsplit(hidden.get("redirect_uri", ""))
    back = f" {target.scheme}://{target.netloc}" if target.scheme in ("http", "https") and target.netloc else ""
    return Reply.html(status, _document("Sign in", body), _headers(CSP.replace("form-action 'self'",
                                                                               f"form-action 'self'{back}")))


def device_login(action: str, code: str = "", username: str = "", error: str | None = None,
                 status: int = 200) -> Reply:
    """The form at the verification URI: the code shown on the device, then who signs in."""
    body = (f"<p>Enter the code displayed on your app or device, then sign in.</p>\n{_error(error)}\n"
            f'<form method="post" action="{escape(action)}">\n'
            f'<label>Code <input name="code" autocomplete="off" value="{escape(code)}"></label>\n'
            f'<label>Email or username <input name="username" autocomplete="username" value="{escape(username)}">'
            "</label>\n"
            '<label>Password <input type="password" name="password" autocomplete="current-password"></label>\n'
            '<button type="submit" name="action" value="approve">Sign in</button>\n'
            '<button type="submit" name="action" value="decline">Cancel</button>\n</form>')
    return Reply.html(status, _document("Enter code", body), _headers())


def message(title: str, text: str, status: int = 200) -> Reply:
    return Reply.html(status, _document(title, f"<p>{escape(text)}</p>"), _headers())


def form_post(redirect_uri: str, values: dict[str, str]) -> Reply:
    """response_mode=form_post: a form to the redirect URI that submits itself."""
    digest = base64.b64encode(hashlib.sha256(AUTO_SUBMIT.encode()).digest()).decode()
    target = urlsplit(redirect_uri)
    csp = (f"default-src 'none'; form-action {target.scheme}://{target.netloc}; script-src 'sha256-{digest}'; "
           "frame-ancestors 'none'; base-uri 'none'")
    body = (f'<form method="post" action="{escape(redirect_uri)}">\n{_hidden(values)}\n'
            '<noscript><button type="submit">Continue</button></noscript>\n</form>\n'
            f"<script>{AUTO_SUBMIT}</script>")
    return Reply.html(200, _document("Working...", body), _headers(csp))
