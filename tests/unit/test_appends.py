"""Group commit of audit lines: what concurrent writers append to one blob goes out as one block."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.adapters.storage.appends import GroupAppend


class SlowBlob:
    """Append Block, held until released, so that writers arrive while a block is in flight."""

    def __init__(self, fail: bool = False) -> None:
        self.blocks: list[tuple[str, bytes]] = []
        self.entered, self.release, self.fail = threading.Event(), threading.Event(), fail
        self.calls = 0

    def append(self, name: str, data: bytes) -> None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        if self.fail and self.calls > 1:
            raise OSError("storage unavailable")
        self.blocks.append((name, data))


def waiting_on(group: GroupAppend, name: str, count: int) -> bool:
    """Whether `count` lines wait in the block gathering for `name` (inspected, not timed)."""
    with group._lock:
        block = group._gathering.get(name)
        return block is not None and len(block.parts) == count


def test_lines_that_arrive_while_a_block_is_stored_go_out_together_in_the_next() -> None:
    blob = SlowBlob()
    group = GroupAppend(blob.append)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(group.append, "audit/d.jsonl", b"0\n")
        assert blob.entered.wait(10)
        later = [pool.submit(group.append, "audit/d.jsonl", f"{i}\n".encode()) for i in range(1, 6)]
        while not waiting_on(group, "audit/d.jsonl", 5):
            threading.Event().wait(0.001)
        blob.release.set()
        for future in [first, *later]:
            future.result(timeout=10)
    assert blob.blocks[0] == ("audit/d.jsonl", b"0\n")
    assert len(blob.blocks) == 2, "five lines, one block"
    assert sorted(blob.blocks[1][1].splitlines()) == [b"1", b"2", b"3", b"4", b"5"]


def test_a_writer_alone_appends_at_once_and_blobs_do_not_wait_for_each_other() -> None:
    stored: list[tuple[str, bytes]] = []
    group = GroupAppend(lambda name, data: stored.append((name, data)))
    group.append("a", b"1\n")
    group.append("b", b"2\n")
    assert stored == [("a", b"1\n"), ("b", b"2\n")]


def test_a_block_that_fails_fails_every_line_it_carried_and_the_next_goes_on() -> None:
    blob = SlowBlob(fail=True)
    group = GroupAppend(blob.append)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.append, "x", b"0\n")
        assert blob.entered.wait(10)
        later = [pool.submit(group.append, "x", f"{i}\n".encode()) for i in range(1, 4)]
        while not waiting_on(group, "x", 3):
            threading.Event().wait(0.001)
        blob.release.set()
        first.result(timeout=10)
        for future in later:
            with pytest.raises(OSError, match="storage unavailable"):
                future.result(timeout=10)
    blob.fail = False
    group.append("x", b"4\n")
    assert blob.blocks == [("x", b"0\n"), ("x", b"4\n")]


def test_a_block_never_grows_past_the_limit() -> None:
    blob = SlowBlob()
    group = GroupAppend(blob.append, max_block_bytes=4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.append, "x", b"0\n")
        assert blob.entered.wait(10)
        later = [pool.submit(group.append, "x", b"%d\n" % i) for i in range(1, 4)]
        blob.release.set()
        for future in [first, *later]:
            future.result(timeout=10)
    assert all(len(data) <= 4 for _, data in blob.blocks)
    assert sorted(b"".join(data for _, data in blob.blocks).splitlines()) == [b"0", b"1", b"2", b"3"]
