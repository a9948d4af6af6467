"""A local stand-in for Microsoft Entra ID, faithful to its wire protocol, for tests and local runs.

One tenant (`directory.TENANT`) with its people, app registrations and resources
(directory.py); Entra's endpoints on Entra's paths (service.py): OpenID Connect and instance
discovery, the signing keys, the authorization code flow with PKCE and its sign-in page, the
device authorization grant and its verification page, and the token endpoint's grants
(authorization code, device code, client credentials, refresh token), with Entra's claims
(tokens.py) and Entra's refusals (errors.py). `server.serving()` puts it on a loopback HTTPS
port; `devhost/entra.py` starts it for the app, the tests and the demo.

It imports nothing of the app: its only tie to the repository is the certificate files of
`localaml.tls`, whose CA the app already trusts.
"""

from localentra.service import LocalEntra

__all__ = ["LocalEntra"]
