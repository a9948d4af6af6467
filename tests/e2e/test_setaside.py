"""The set-aside listing on the local host: a rejected event, an ignored one and a poisoned work
item are listed newest first with the keys `replay` takes, through the API and opsctl, and one
is replayed from what the listing gave."""

from __future__ import annotations

import copy
import json

import pytest
import requests
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from devhost.entra import LocalEntraStack
from devhost.process import HostProcess
from devhost.waiting import wait_until
from tests.e2e import people
from tests.e2e.test_webhook import post, registered_event, store

pytestmark = pytest.mark.e2e

ITEM_FIELDS = {"kind", "key", "reason", "time", "event_id", "event_type", "subject"}


OPERATOR = "carol"


def test_set_aside_items_are_listed_newest_first_and_one_is_replayed(
        host: HostProcess, entra: LocalEntraStack, capsys: pytest.CaptureFixture[str]) -> None:
    def opsctl(*argv: str) -> tuple[int, str, str]:
        code = people.opsctl(entra, host.url, OPERATOR, argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def host_get(path: str, params: dict[str, str]) -> requests.Response:
        return requests.get(f"{host.url}/api/{path}", params=params, timeout=30,
                            headers={"Authorization": f"Bearer {entra.token_for(OPERATOR)}"})

    rejected = registered_event()
    rejected.pop("data")
    ignored = copy.deepcopy(registered_event())
    ignored["eventType"] = "Microsoft.Storage.BlobCreated"
    assert post(host, [rejected]).status_code == 202
    assert post(host, [ignored]).status_code == 202
    queue = QueueClient.from_connection_string(
        host.settings["AzureWebJobsStorage"], "aml-work", message_encode_policy=BinaryBase64EncodePolicy())
    poisoned = {"key": "setaside-probe", "event": {"id": "evt-setaside", "eventType": "not-an-aml-event",
                                                   "subject": "models/nothing:1"}}
    queue.send_message(json.dumps(poisoned).encode())
    wait_until(lambda: store(host).get("deadletter", "setaside-probe"), timeout=60)

    code, out, err = opsctl("setaside", "--json")
    assert code == 0, err
    items = json.loads(out)["items"]
    assert all(set(item) == ITEM_FIELDS for item in items)
    assert [item["kind"] for item in items] == ["deadletter", "ignored", "rejected"]  # newest first
    dead, skipped, refused = items
    assert (dead["key"], dead["event_id"], dead["event_type"], dead["subject"]) == (
        "setaside-probe", "evt-setaside", "not-an-aml-event", "models/nothing:1")
    assert "UnknownEventType" in dead["reason"]
    assert (skipped["event_id"], skipped["event_type"]) == (ignored["id"], "Microsoft.Storage.BlobCreated")
    assert "not an Azure ML event" in skipped["reason"]
    assert (refused["event_id"], refused["subject"]) == (rejected["id"], rejected["subject"])
    assert "'data' must be a JSON object" in refused["reason"]
    assert [d["event"]["id"] for d in store(host).list("rejected")] == [rejected["id"]]
    assert refused["key"] in {key for key, _ in store(host).items("rejected")}  # the key replay takes

    only = host_get("ops/events/setaside", {"kind": "ignored", "limit": "1"})
    assert only.status_code == 200 and [i["key"] for i in only.json()["items"]] == [skipped["key"]]
    newest = host_get("ops/events/setaside", {"limit": "1"})
    assert [i["kind"] for i in newest.json()["items"]] == ["deadletter"]
    for params, field in (({"kind": "poisoned"}, "kind"), ({"limit": "0"}, "limit"), ({"limit": "many"}, "limit"),
                          ({"kinds": "rejected"}, "kinds")):
        refusal = host_get("ops/events/setaside", params)
        assert refusal.status_code == 400 and refusal.json()["field"] == field, (params, refusal.text)

    code, table, _ = opsctl("setaside")
    assert code == 0
    assert table.splitlines()[0].split() == ["time", "kind", "key", "event", "reason"]
    rows = table.splitlines()[2:]
    assert [row.split()[2] for row in rows if row[:1].strip()] == ["deadletter", "ignored", "rejected"]
    assert rows[0].split()[3] == "setaside-probe" and refused["key"] in table  # keys whole, for replay

    code, out, err = opsctl("replay", dead["kind"], dead["key"])
    assert code == 0, err
    assert out.strip() == "replayed deadletter setaside-probe: requeued"
    replays = [e for e in store(host).read_audit() if e.action == "ops.replay"]
    assert [(e.subject, e.outcome) for e in replays] == [("deadletter/setaside-probe", "requeued")]
    carol = entra.entra.directory.user(OPERATOR)
    assert carol is not None and (replays[0].by_oid, replays[0].by) == (carol.oid, carol.display_name)
    # Back on the queue, it runs from its first attempt again (and, still broken, is set aside anew).
    wait_until(lambda: [e for e in store(host).read_audit() if e.correlation_id == "evt-setaside"
                        and e.action == "react" and e.time > replays[0].time], timeout=30)
    again = wait_until(lambda: store(host).get("deadletter", "setaside-probe"), timeout=60)
    assert again is not None and again["time"] > dead["time"]

    code, _, err = opsctl("replay", "poisoned", dead["key"])
    assert code == 1 and "400" in err and "(field: kind)" in err

