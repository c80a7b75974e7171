"""Segments held by another host: the index's host field (old members unchanged), the internal segment server
(authentication, crafted paths), :func:`pipeline.recording.locate.open_segment` and an evidence export of footage
that another host holds, with that host up and down. Hosts are two recordings folders and a server on loopback
here; tests/cluster/test_recordings_across_hosts.py runs the same across network-namespace hosts."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.recording.export import FootageUnavailable, export_clip
from pipeline.recording.index import Segment, add_segment, index_key, remove_segment, segments_between
from pipeline.recording.locate import SegmentMissing, SegmentUnavailable, open_segment, unreachable_hosts
from pipeline.recording.serve import SegmentServer, start_segment_server
from pipeline.settings import Settings
from tests.cluster.footage import cut_segments
from tests.conftest import wait_for

CAM = "far-cam"
TOKEN = "internal-token-of-the-test-cluster"
VIDEO = "short_hamilton_clip.mp4"


def test_host_field_is_optional_and_old_members_keep_their_exact_text(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(index_key(CAM))
    old = '{"end":12.0,"path":"far-cam/a.mkv","size":5,"start":10.0}'  # written before hosts were indexed
    client.zadd(index_key(CAM), {old: 10.0})
    seg = segments_between(client, CAM, 0, 100)[0]
    assert seg.host is None and seg.member() == old
    remove_segment(client, CAM, seg)
    assert client.zcard(index_key(CAM)) == 0
    new = Segment("far-cam/b.mkv", 20.0, 22.0, 7, host="worker-2")
    add_segment(client, CAM, new)
    assert segments_between(client, CAM, 0, 100) == [new]
    assert json.loads(new.member())["host"] == "worker-2"


@pytest.fixture(scope="module")
def footage(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Segment]]:
    """Real footage cut by stream copy into 2 s Matroska segments, laid out as the recorder does, on "worker-2"."""
    rec = tmp_path_factory.mktemp("worker2-rec")
    segments = cut_segments(shared_dir / "data" / "videos" / VIDEO, rec, CAM, "worker-2",
                            tmp_path_factory.mktemp("cut"))
    return rec, segments


@pytest.fixture()
def worker2(footage: tuple[Path, list[Segment]], redis_url: str) -> Iterator[SegmentServer]:
    """worker-2's segment server on a free loopback port, registered in Redis."""
    rec, segments = footage
    client = redis.Redis.from_url(redis_url)
    client.delete(index_key(CAM))
    for seg in segments:
        add_segment(client, CAM, seg)
    stop = threading.Event()
    settings = Settings(redis_url=redis_url, recordings_dir=rec, host_name="worker-2", internal_token=TOKEN,
                        internal_listen="127.0.0.1:0")
    server = start_segment_server(client, settings, stop_event=stop)
    assert server is not None

    def registered() -> bool:
        return client.hget("cctv:segment-servers", "worker-2") == f"http://127.0.0.1:{server.port}".encode()

    wait_for(registered, 30, "segment server registered in Redis")
    yield server
    stop.set()
    server.shutdown()
    server.server_close()


def api_settings(redis_url: str, tmp_path: Path, token: str | None = TOKEN) -> Settings:
    """The settings of the host asking (the API's): another host name, its own recordings folder."""
    return Settings(redis_url=redis_url, recordings_dir=tmp_path / "api-rec", host_name="api-1", internal_token=token)


def get(server: SegmentServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_segment_server_wants_the_token_and_refuses_crafted_paths(worker2: SegmentServer,
                                                                  footage: tuple[Path, list[Segment]]) -> None:
    rec, segments = footage
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = f"/internal/segments/{segments[0].path}"
    status, body = get(worker2, good, auth)
    assert status == 200 and body == (rec / segments[0].path).read_bytes()
    assert get(worker2, good)[0] == 401
    assert get(worker2, good, {"Authorization": f"Bearer {TOKEN[:-1]}x"})[0] == 401
    assert get(worker2, f"{good}?token={TOKEN}")[0] == 401  # a token in the URL is not a credential
    assert get(worker2, "/internal/health", auth) == (200, b'{"host": "worker-2"}')
    secret = rec / "secret.mkv"
    secret.write_bytes(b"not for you")
    (rec / CAM / "escape.mkv").symlink_to(secret)
    (rec / CAM / ".incoming").mkdir(exist_ok=True)
    (rec / CAM / ".incoming" / "open.mkv").write_bytes(b"being written")
    (rec / CAM / "notes.txt").write_text("x")
    for crafted in ("../secret.mkv", f"{CAM}/../secret.mkv", f"{CAM}/%2e%2e/secret.mkv", f"{CAM}/..%2fsecret.mkv",
                    f"{CAM}/escape.mkv", f"{CAM}/.incoming/open.mkv", f"{CAM}/notes.txt", "secret.mkv",
                    f"%2F{rec}/secret.mkv", f"{CAM}//{Path(segments[0].path).name}", f"{CAM}/%00.mkv",
                    f"{CAM}\\..\\secret.mkv"):
        status, body = get(worker2, f"/internal/segments/{crafted}", auth)
        assert status == 404 and b"not for you" not in body, crafted


def test_open_segment_fetches_from_the_holding_host_and_says_which_host_is_down(
        worker2: SegmentServer, footage: tuple[Path, list[Segment]], redis_url: str, tmp_path: Path) -> None:
    rec, segments = footage
    client = redis.Redis.from_url(redis_url)
    settings = api_settings(redis_url, tmp_path)
    path = open_segment(client, settings.recordings_dir, segments[1], settings)
    assert path.read_bytes() == (rec / segments[1].path).read_bytes()
    assert path.is_relative_to(settings.recordings_dir / ".remote" / "worker-2")
    assert unreachable_hosts(client, settings.recordings_dir, segments, settings) == {}
    with pytest.raises(SegmentMissing):
        open_segment(client, settings.recordings_dir, Segment(f"{CAM}/gone.mkv", 1, 2, 3, host="worker-2"), settings)
    with pytest.raises(SegmentMissing, match="not a plain relative path"):
        open_segment(client, settings.recordings_dir, Segment("../../etc/x.mkv", 1, 2, 3, host="worker-2"), settings)
    with pytest.raises(SegmentUnavailable, match="CCTV_INTERNAL_TOKEN is not set"):
        open_segment(client, settings.recordings_dir, segments[2], api_settings(redis_url, tmp_path, None))
    worker2.shutdown()
    worker2.server_close()  # the host is down
    with pytest.raises(SegmentUnavailable, match="'worker-2'") as info:
        open_segment(client, settings.recordings_dir, segments[2], settings)
    assert info.value.host == "worker-2"
    assert set(unreachable_hosts(client, settings.recordings_dir, segments, settings)) == {"worker-2"}
    # what was fetched before stays readable from the cache
    assert open_segment(client, settings.recordings_dir, segments[1], settings) == path


def test_export_of_footage_held_by_another_host(worker2: SegmentServer, footage: tuple[Path, list[Segment]],
                                                redis_url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rec, segments = footage
    client = redis.Redis.from_url(redis_url)
    settings = api_settings(redis_url, tmp_path)
    monkeypatch.setattr("pipeline.recording.locate.get_settings", lambda: settings)
    start, end = segments[0].start + 0.5, segments[-1].end - 0.5
    result = export_clip(client, CAM, start, end, "inv", out_dir=tmp_path / "out",
                         recordings_dir=settings.recordings_dir)
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["segments"] == [s.path for s in segments]
    assert hashlib.sha256(result.mp4_path.read_bytes()).hexdigest() == result.sha256
    assert abs(result.duration - (end - start)) < 1.5
    worker2.shutdown()
    worker2.server_close()
    other = api_settings(redis_url, tmp_path / "fresh")  # nothing cached there
    monkeypatch.setattr("pipeline.recording.locate.get_settings", lambda: other)
    with pytest.raises(FootageUnavailable, match="host 'worker-2'") as info:
        export_clip(client, CAM, start, end, "inv", out_dir=tmp_path / "out2", recordings_dir=other.recordings_dir)
    assert set(info.value.hosts) == {"worker-2"}


def test_retention_deletes_only_this_hosts_segments_and_applies_the_quota_to_its_own_disk(
        redis_url: str, tmp_path: Path) -> None:
    from pipeline.config import parse_config
    from pipeline.recording.index import bytes_held_by
    from pipeline.recording.recorder import final_path
    from pipeline.recording.retention import apply_retention

    client = redis.Redis.from_url(redis_url)
    cam = "ret-cam"
    client.delete(index_key(cam), "cctv:rec:bytes", "cctv:rec:host-bytes")
    config = parse_config(f"cameras:\n  - {{id: {cam}, name: R, url: 'rtsp://127.0.0.1:1/x', "
                          "recording: {retention_days: 1}}\n")
    disks = {"host-a": tmp_path / "a", "host-b": tmp_path / "b"}
    now = 1_700_000_000.0
    made: list[Segment] = []
    for i, (host, age_days) in enumerate([("host-a", 3), ("host-b", 3), ("host-a", 0), ("host-b", 0), (None, 0)]):
        start = now - age_days * 86400 + i
        path = final_path(disks[host or "host-a"], cam, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        seg = Segment(str(path.relative_to(disks[host or "host-a"])), start, start + 1, 1000, host=host)
        add_segment(client, cam, seg)
        made.append(seg)
    # the entry without a host (indexed before hosts were recorded) counts as the asking host's own
    assert bytes_held_by(client, "host-a") == 3000 and bytes_held_by(client, "host-b") == 3000

    report = apply_retention(client, config, disks["host-a"], now=now, quota_bytes=10**9, host="host-a")
    left = segments_between(client, cam, 0, now + 10)
    assert report.deleted_by_age == 1 and made[0] not in left and made[1] in left  # b's old segment is b's to delete
    assert (disks["host-b"] / made[1].path).exists()

    report = apply_retention(client, config, disks["host-a"], now=now, quota_bytes=1000, host="host-a")
    left = segments_between(client, cam, 0, now + 10)
    assert report.deleted_by_quota == 1 and made[2] not in left  # host-a's oldest goes; host-b's are not counted
    assert set(left) == {made[1], made[3], made[4]} and bytes_held_by(client, "host-a") == 1000


def test_playback_plan_reaches_segments_on_another_host_and_says_when_it_is_down(
        worker2: SegmentServer, footage: tuple[Path, list[Segment]], redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.recording.playback import plan_playback

    rec, segments = footage
    client = redis.Redis.from_url(redis_url)
    settings = api_settings(redis_url, tmp_path)
    monkeypatch.setattr("pipeline.recording.locate.get_settings", lambda: settings)
    plan = plan_playback(client, settings.recordings_dir, CAM, segments[0].start + 0.5, 60)
    assert [p.read_bytes() for p in plan.files] == [(rec / s.path).read_bytes() for s in segments]
    worker2.shutdown()
    worker2.server_close()
    other = api_settings(redis_url, tmp_path / "fresh")
    monkeypatch.setattr("pipeline.recording.locate.get_settings", lambda: other)
    with pytest.raises(SegmentUnavailable, match="'worker-2'"):
        plan_playback(client, other.recordings_dir, CAM, segments[0].start + 0.5, 60)


def test_fetch_cache_drops_least_recently_used_copies_but_never_ones_in_use(tmp_path: Path) -> None:
    from pipeline.recording.locate import _trim_cache

    root = tmp_path / ".remote"
    files = []
    for i, age_s in enumerate((7200, 5400, 10)):  # two used hours ago, one just now (an export in progress)
        path = root / "worker-2" / CAM / f"s{i}.mkv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (time.time() - age_s, time.time() - age_s))
        files.append(path)
    _trim_cache(root, keep=files[2], max_bytes=1500)
    assert [p.exists() for p in files] == [False, False, True]
    _trim_cache(root, keep=files[0], max_bytes=0)  # over the cap, but the copy left was used seconds ago
    assert files[2].exists()


def test_a_crafted_host_in_the_index_is_never_fetched_nor_written_outside_the_cache(
        worker2: SegmentServer, footage: tuple[Path, list[Segment]], redis_url: str, tmp_path: Path) -> None:
    rec, segments = footage
    client = redis.Redis.from_url(redis_url)
    settings = api_settings(redis_url, tmp_path)
    url = client.hget("cctv:segment-servers", "worker-2")
    seg = segments[0]
    for host in ("../../escaped", "..", ".", str(tmp_path / "absolute"), "a/../../b", "x\x00y", "h" * 300):
        client.hset("cctv:segment-servers", host, url)  # the crafted host even "registered" a real server
        with pytest.raises(SegmentMissing, match="not a plain host name"):
            open_segment(client, settings.recordings_dir, Segment(seg.path, seg.start, seg.end, seg.size, host=host),
                         settings)
    fetched = [p for p in tmp_path.rglob("*.mkv") if not p.is_relative_to(rec)]
    assert fetched == [], "nothing fetched for a crafted host"
