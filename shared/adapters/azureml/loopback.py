"""Whether a URL is an https URL on this machine: the only place a local Azure ML service may be (the app sends its
Resource Manager tokens to MLOPS_AZUREML_ENDPOINT)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(url: str) -> bool:
    """True for an https URL whose host is a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
