"""Stored documents that are not valid records: set aside, so that one bad record never hides the rest.

A listing (the admin API's, the resync's, the rollout tick's) that meets a document of its kind that does
not load sets it aside: a set-aside entry (`invalid`, under `<kind>/<key>`, naming the field at fault, listed
by `GET /api/ops/events/setaside`), an incident (an audit entry, `work.failed` told once) and the index's
mark, which keeps it out of the listings that filter. The document itself stays where it is, for diagnosis:
a valid write of the record indexes it again.
"""

from __future__ import annotations

from typing import Any

from shared.adapters.storage.stores import InvalidRecord, Store
from shared.bootstrap import Services
from shared.domain.work import SetAside
from shared.reactor import outcomes

SCOPE = "record"
"""The incident scope of an invalid record (`outcomes.report_failure`)."""


def set_aside(services: Services, store: Store[Any], error: InvalidRecord, cause: str, report: bool = True) -> None:
    """Set the invalid record aside once: its entry, its mark in the index and (`report`, when the caller does
    not report the failure itself) its incident. Never raises: the listing goes on with the others."""
    key = f"{error.kind}/{error.key}"
    reason = f"records/{key}: field {error.field!r} is not valid: {error}"[:1000]
    try:
        created = services.state.invalid.create(key, SetAside(
            reason=reason, received=services.clock(),
            event={"id": key, "type": "invalid-record", "subject": f"field {error.field}"}))
        if created:
            store.set_invalid(error)
    except Exception:
        outcomes.log.exception("could not set aside %s", key)
        return
    if created and report:
        outcomes.report_failure(services, SCOPE, key, error, cause)


def set_aside_known(services: Services, store: Store[Any], cause: str) -> dict[str, str]:
    """Set aside the documents of the store's kind the index knows are invalid (one query; each set aside
    once). Returns what was found, by `<kind>/<key>`."""
    found = {}
    for error in store.invalid():
        set_aside(services, store, error, cause)
        found[f"{error.kind}/{error.key}"] = f"set aside: {error.field}"
    return found
