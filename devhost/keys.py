"""Host keys, as the Functions host keeps them: a master key, a default function key and
one system key per extension webhook (Event Grid, blobs)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostKeys:
    master: str
    function: str
    eventgrid_extension: str
    blobs_extension: str

    @classmethod
    def generate(cls) -> HostKeys:
        return cls(*(_new_key() for _ in range(4)))

    @classmethod
    def load_or_create(cls, path: Path) -> HostKeys:
        """Keys kept across restarts of the local host, readable only by the user."""
        if path.exists():
            return cls(**json.loads(path.read_text()))
        keys = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(keys)))
        os.chmod(path, 0o600)
        return keys

    def allows(self, auth_level: str, key: str | None) -> bool:
        """Whether `key` opens a route of this auth level (anonymous, function, admin)."""
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not key:
            return False
        if _same(key, self.master):
            return True
        return level == "function" and _same(key, self.function)

    def allows_extension(self, extension: str, key: str | None) -> bool:
        """Whether `key` opens an extension webhook (its system key, or the master key)."""
        expected = {"eventgrid": self.eventgrid_extension, "blobs": self.blobs_extension}[extension]
        if not key:
            return False
        return _same(key, expected) or _same(key, self.master)


def _new_key() -> str:
    """256 random bits, URL-safe, never starting with `-`: a key is passed as an option's value (`send_events
    --key KEY`), where argparse takes `-...` for an option (a fresh-clone run failed on it). The Functions host's
    own keys are Base64 and never start with `-` (Azure/azure-functions-host, Kudu/SecurityUtility.cs)."""
    while True:
        key = secrets.token_urlsafe(32)
        if key[0].isalnum():
            return key


def _same(given: str, expected: str) -> bool:
    """Whether the key given is the expected one, in constant time. Compared as UTF-8 bytes: `compare_digest`
    refuses a str that is not ASCII (TypeError, once a 500), and a key may arrive as any text (a header is
    read as Latin-1, `?code=` percent-decoded as UTF-8, lone surrogates included). No such key matches."""
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
