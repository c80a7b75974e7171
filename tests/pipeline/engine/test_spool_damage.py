"""What the event spool loses when things go wrong: damaged lines, torn records, a full disk, a kill mid-replay,
a record that is no valid event any more, and an engine loop step that raises."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from pipeline.engine import spool as spool_module
from pipeline.engine.metrics import EngineMetrics
from pipeline.engine.process import run_loop
from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.events import PlateEvent

pytestmark = pytest.mark.timeout(120)


def _segment_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("spool-*.jsonl"))


def _drain_all(spool: EventSpool) -> list[Any]:
    got: list[Any] = []
    spool.drain(lambda kind, payload: got.append(payload["i"]) or True)
    return got


def test_damaged_lines_are_skipped_one_by_one_with_a_warning_and_replay_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = EventSpool(tmp_path, max_bytes=1_000_000)
    spool.append("plate", {"i": 0})
    (segment,) = _segment_files(tmp_path)
    with segment.open("ab") as fh:
        fh.write(b'{"kind":"plate","payl\x00oad":\n')  # not JSON
        fh.write(b"[1, 2, 3]\n")  # JSON, not a record
        fh.write(b'{"kind":"plate"}\n')  # no payload
        fh.write(b'{"kind":"plate","payload":"text"}\n')  # payload not an object
        fh.write(b'{"kind":"plate","payload":{"i":"\xff\xfe"}}\n')  # not UTF-8
    spool.append("plate", {"i": 1})
    with caplog.at_level(logging.WARNING, logger="pipeline.engine.spool"):
        reopened = EventSpool(tmp_path, max_bytes=1_000_000)  # a restart must not refuse or stop at the damage
        assert len(reopened) == 2
        assert _drain_all(reopened) == [0, 1]
    assert reopened.corrupt == 5 and len(reopened) == 0
    assert sum("damaged record" in r.getMessage() for r in caplog.records) == 5  # once per line, not per pass


def test_a_record_torn_by_a_crash_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=1_000_000)
    spool.append("plate", {"i": 0})
    (segment,) = _segment_files(tmp_path)
    with segment.open("ab") as fh:  # the engine died (or the disk filled) in the middle of writing a record
        fh.write(b'{"kind":"plate","payload":{"i":9')
    reopened = EventSpool(tmp_path, max_bytes=1_000_000)
    assert len(reopened) == 1
    reopened.append("plate", {"i": 1})
    reopened.append("plate", {"i": 2})
    assert len(reopened) == 3
    assert _drain_all(reopened) == [0, 1, 2]
    assert reopened.corrupt == 1


def test_a_full_disk_loses_only_the_record_being_written_counts_it_and_leaves_no_partial_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = EventSpool(tmp_path, max_bytes=1_000_000)
    spool.append("plate", {"i": 0})
    real_fsync = os.fsync
    calls = {"n": 0}

    def full_once(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", full_once)
    assert spool.append("plate", {"i": 1}) is False  # never raises into the engine
    assert spool.dropped == 1 and len(spool) == 1
    monkeypatch.setattr(spool_module.os, "fsync", real_fsync)
    assert spool.append("plate", {"i": 2}) is True  # space is back: spooling resumes
    assert _drain_all(EventSpool(tmp_path, max_bytes=1_000_000)) == [0, 2]
    assert all(p.read_bytes() == b"" or p.read_bytes().endswith(b"\n") for p in _segment_files(tmp_path))


def test_the_size_cap_holds_even_when_a_segment_would_be_larger_than_the_cap(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=2000, segment_bytes=100_000)
    for i in range(200):
        spool.append("alert", {"i": i, "pad": "x" * 20})
    assert spool.size_bytes() <= 2000
    remaining = _drain_all(spool)
    assert remaining and remaining == list(range(200 - len(remaining), 200))
    assert spool.dropped + len(remaining) == 200


def _replay_and_die(folder: str, log: str, die_after: int) -> None:
    """Child: replay the spool, 'storing' each record in ``log``; killed right after storing ``die_after``."""
    spool = EventSpool(folder, max_bytes=1_000_000, segment_bytes=400)

    def deliver(kind: str, payload: dict[str, Any]) -> bool:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{payload['i']}\n")
            fh.flush()
            os.fsync(fh.fileno())
        if payload["i"] == die_after:
            os.kill(os.getpid(), 9)  # stored, not yet committed: the worst moment
        return True

    spool.drain(deliver)


def test_a_kill_in_the_middle_of_replay_loses_nothing_and_repeats_only_the_record_in_flight(tmp_path: Path) -> None:
    folder, log = tmp_path / "spool", tmp_path / "stored.txt"
    spool = EventSpool(folder, max_bytes=1_000_000, segment_bytes=400)
    for i in range(40):
        spool.append("plate", {"i": i})
    child = multiprocessing.get_context("spawn").Process(target=_replay_and_die, args=(str(folder), str(log), 17))
    child.start()
    child.join(timeout=90)
    assert child.exitcode == -9
    after = EventSpool(folder, max_bytes=1_000_000, segment_bytes=400)
    assert len(after) == 23  # 17 (in flight) and everything after it
    stored = [int(x) for x in log.read_text().split()] + _drain_all(after)
    assert sorted(set(stored)) == list(range(40))  # nothing lost
    assert stored == list(range(18)) + list(range(17, 40))  # only the record in flight twice (the store ignores it)


class _Store:
    def __init__(self) -> None:
        self.plates: list[str] = []

    def publish_plate_event(self, event: PlateEvent) -> bool:
        self.plates.append(event.plate_text)
        return True


def _plate(text: str) -> PlateEvent:
    now = time.time()
    return PlateEvent(camera_id="cam", track_id=1, started_at=now - 1, ended_at=now, frame_time=now, plate_text=text,
                      province="กรุงเทพมหานคร", confidence=0.9)


def test_an_invalid_spooled_record_is_skipped_and_counted_not_retried_forever_ahead_of_the_rest(
        tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=1_000_000)
    spool.append("plate", {"camera_id": "cam", "confidence": "not a number"})  # e.g. written by an older version
    spool.append("plate", _plate("1กข1234").model_dump(mode="json"))
    store = _Store()
    publisher = SpooledPublisher(store, spool, max_backoff_s=0.0)
    publisher.flush(force=True)
    assert store.plates == ["1กข1234"]
    assert publisher.invalid_skipped == 1 and publisher.pending == 0


class _Bus:
    def get_batch(self, max_items: int, timeout_s: float) -> list[Any]:
        time.sleep(min(timeout_s, 0.01))
        return []

    def release(self, item: Any) -> None:  # pragma: no cover - no items
        pass

    def depth(self, camera_id: str) -> int:
        return 0

    def dropped(self, camera_id: str) -> int:
        return 0


class _Client:
    """A Redis client whose server is away: every command raises a connection error."""

    def __getattr__(self, name: str) -> Any:
        def away(*args: Any, **kwargs: Any) -> Any:
            raise redis.ConnectionError("no redis in this test")

        return away


def test_a_loop_step_that_raises_is_logged_and_counted_and_the_engine_keeps_running(tmp_path: Path) -> None:
    metrics = EngineMetrics("loop-test")
    ticks = {"n": 0}
    finished = threading.Event()

    def tick(pending: Any = None) -> None:
        ticks["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")  # e.g. a snapshot or spool write of an ended track

    engine = SimpleNamespace(metrics=metrics, process_batch=lambda batch: None, tick=tick,
                             finish=finished.set, snapshots=SimpleNamespace(recordings_dir=tmp_path))
    publisher = SimpleNamespace(flush=lambda force=False: 0, pending=0, redis_ok=True,
                                spool=SimpleNamespace(dropped=0, corrupt=0, folder=tmp_path), invalid_skipped=0)
    config = SimpleNamespace(cameras=[], engine=SimpleNamespace(
        metrics_port=0, max_batch_size=4, max_wait_ms=10.0, metrics_interval_s=3600.0, snapshot_retention_days=30))
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            run_loop(engine, publisher, _Client(), config, _Bus(), stop)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while ticks["n"] < 3 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=60)
    assert not errors, errors
    assert ticks["n"] >= 3 and finished.is_set()
    assert metrics.counters["tick_errors"] >= 3
