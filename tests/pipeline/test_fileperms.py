"""What the service writes is private to its user and group (umask 0o027 set by its entry points), whatever umask
started it: real entry points run as subprocesses of a parent with umask 0o000, the most permissive one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port
from tests.playback_support import record

REPO = Path(__file__).resolve().parents[2]
PERMISSIVE = 0o000


def _permissive() -> None:
    """``preexec_fn``: the child starts with umask 0o000 (new folders 0o777, new files 0o666 unless set)."""
    os.umask(PERMISSIVE)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# `pipeline run` with the service stood in for by what it writes first: a camera's segment folder, a snapshot
# written by Python, a segment written by an ffmpeg child (children inherit the umask)
RUN_ENTRY = """
import subprocess, sys
from pathlib import Path
import pipeline.service
from pipeline.cli import main

def service(config, **_):
    folder = Path(sys.argv[1]) / "cam-1" / "2026" / "12" / "05"
    folder.mkdir(parents=True)
    (folder / "snapshot.jpg").write_bytes(b"jpeg")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
                    "-t", "0.4", "-f", "matroska", str(folder / "seg.mkv")], check=True, timeout=120)
    return 0

pipeline.service.run_service = service
sys.exit(main(["run", "--config", sys.argv[2], "--port", sys.argv[3]]))
"""


@pytest.mark.timeout(180)
def test_pipeline_run_creates_private_recordings_under_a_permissive_umask(tmp_path: Path) -> None:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n  - {id: cam-1, name: C, url: 'rtsp://10.0.0.9/live'}\n")
    rec = tmp_path / "recordings"
    rec.mkdir()
    done = subprocess.run([sys.executable, "-c", RUN_ENTRY, str(rec), str(config), str(free_port())], cwd=REPO,
                          capture_output=True, text=True, timeout=150, preexec_fn=_permissive)  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = rec / "cam-1" / "2026" / "12" / "05"
    for level in (rec / "cam-1", rec / "cam-1" / "2026", folder):
        assert _mode(level) == 0o750, level
    assert _mode(folder / "snapshot.jpg") == 0o640
    assert _mode(folder / "seg.mkv") == 0o640


def test_the_api_factory_sets_the_service_umask(tmp_path: Path) -> None:
    """``uvicorn api.main:create_app --factory`` (no `pipeline run` around it) gets the same umask."""
    program = ("import os\nfrom api.main import create_app\ncreate_app()\n"
               "print(oct(os.umask(0)))\n")  # fmt: skip
    env = {**os.environ, "CCTV_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "CCTV_RECORDINGS_DIR": str(tmp_path / "rec")}  # fmt: skip
    env.pop("CCTV_REDIS_SENTINELS", None)
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, preexec_fn=_permissive)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0o27"


@pytest.mark.timeout(300)
def test_export_clip_writes_a_private_clip_and_manifest(client: redis.Redis, redis_url: str, shared_dir: Path,
                                                        tmp_path: Path) -> None:
    """The real `export-clip` command on real segments: the new exports folder 0o750, the clip and its manifest
    0o640 (the manifest names a camera and a time window)."""
    rec_dir = tmp_path / "recordings"
    segments = record(client, rec_dir, "perm-cam", shared_dir / "data" / "videos" / "short_hamilton_clip.mp4",
                      time.time() - 3600, segment_s=2)
    out = tmp_path / "exports" / "case-1"
    env = {**os.environ, "CCTV_REDIS_URL": redis_url, "CCTV_RECORDINGS_DIR": str(rec_dir)}
    env.pop("CCTV_REDIS_SENTINELS", None)
    done = subprocess.run([sys.executable, "-m", "pipeline", "export-clip", "perm-cam", str(segments[0].start + 0.5),
                           str(segments[1].end), "--requester", "Desk 3", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, preexec_fn=_permissive)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [clip], [manifest] = sorted(out.glob("*.mp4")), sorted(out.glob("*.json"))
    assert _mode(tmp_path / "exports") == 0o750 and _mode(out) == 0o750
    assert _mode(clip) == 0o640
    assert _mode(manifest) == 0o640


def test_a_stricter_umask_stays_stricter() -> None:
    """The service's umask only takes bits away: started under 0o077, a process keeps 0o077."""
    program = "import os\nfrom pipeline.fileperms import apply_service_umask\napply_service_umask()\nprint(oct(os.umask(0)))"
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.umask(0o077))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0o77"
