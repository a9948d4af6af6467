"""The model lifecycle: a pure state machine (`machine`) and the I/O around it (`controller`).

testing -> passed | failed -> [awaiting_review] -> promoted -> rolling out -> live | rolled back;
a live version another replaces is superseded, then retired. See `shared.lifecycle.machine`.
"""

from shared.lifecycle.controller import ReviewRefused, follow, get, reconcile, review, start_testing
from shared.lifecycle.machine import IN_FLIGHT, TAG, is_newer, key_of, version_order, watched

__all__ = [
    "IN_FLIGHT", "TAG", "ReviewRefused", "follow", "get", "is_newer", "key_of", "reconcile", "review",
    "start_testing", "version_order", "watched",
]
