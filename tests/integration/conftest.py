"""Integration fixtures: a local webhook receiver standing in for ops' channels."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from devhost.receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that checks Standard Webhooks signatures made with SECRET."""
    with Receiver(secret=SECRET) as running:
        yield running
