"""The local host's keys."""

from __future__ import annotations

from devhost.keys import HostKeys


def test_generated_keys_can_be_passed_as_an_option_value() -> None:
    """A key starting with `-` was taken by argparse for an option: `send_events --key -x...` failed in CI."""
    keys = [key for _ in range(500) for key in vars(HostKeys.generate()).values()]
    assert len(set(keys)) == len(keys)
    assert not [key for key in keys if not key[0].isalnum()]
    assert all(len(key) >= 43 for key in keys), "256 random bits"
