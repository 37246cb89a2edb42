"""A write that fails halfway (ENOSPC on a full disk) leaves no partial batch behind.

Proves: when ``os.write`` stores part of a batch and then fails, the segment is cut
back to the end of the last whole batch, so the next append follows valid records and
the log recovers with every acknowledged record, no torn tail and no corruption; and
when the cut fails too, the log refuses further writes with an error that says what
happened and what to do, instead of appending after the partial bytes. How: a
WriteAheadLog is driven directly with ``os.write`` (and ``os.ftruncate``) replaced by
versions that write half a batch and then raise ENOSPC.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engram.storage.wal import WriteAheadLog


def payload(i: int) -> bytes:
    return bytes([0x91, 0xCD]) + i.to_bytes(2, "big") + bytes(2000)  # msgpack-ish, 2 KB


def open_log(directory: Path) -> tuple[WriteAheadLog, list]:
    log = WriteAheadLog(directory)
    records, report = log.recover()
    return log, [list(records), report]


def half_then_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    calls = []

    def write(fd: int, data) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_partial_write_is_cut_off_and_the_log_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = open_log(tmp_path)
    log.wait_durable(log.append([(1, payload(i)) for i in range(3)], 1))
    segment = log.segments()[-1][1]
    size = segment.stat().st_size
    with monkeypatch.context() as patch:
        half_then_enospc(patch)
        with pytest.raises(OSError) as info:
            log.append([(1, payload(i)) for i in range(3, 6)], 2)
    assert info.value.errno == errno.ENOSPC
    assert segment.stat().st_size == size  # the half batch is gone
    assert log.last_lsn == 3
    log.wait_durable(log.append([(1, payload(i)) for i in range(3, 6)], 3))  # space again
    log.close()
    again, (records, report) = open_log(tmp_path)
    assert [r.lsn for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r.payload for r in records] == [payload(i) for i in range(6)]
    assert report.torn_tail_bytes == 0 and report.salvaged_from is None
    again.close()


def test_a_partial_write_that_cannot_be_cut_stops_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = open_log(tmp_path)
    log.wait_durable(log.append([(1, payload(0))], 1))
    with monkeypatch.context() as patch:
        half_then_enospc(patch)

        def ftruncate(fd: int, length: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        patch.setattr(os, "ftruncate", ftruncate)
        with pytest.raises(OSError):
            log.append([(1, payload(1))], 2)
    with pytest.raises(OSError) as info:
        log.append([(1, payload(2))], 3)
    assert "reopen" in str(info.value) and str(log.segments()[-1][1]) in str(info.value)
    log.close()  # every record acknowledged before the failure is durable: nothing to report
    # Reopening cuts the partial batch as a torn tail: the acknowledged record is back.
    again, (records, report) = open_log(tmp_path)
    assert [r.payload for r in records] == [payload(0)]
    assert report.torn_tail_bytes > 0
    again.close()
