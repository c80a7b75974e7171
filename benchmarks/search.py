"""Search benchmark: fills its own Redis with synthetic Thai plate reads and faces, then times the searches.

Usage: ``python -m benchmarks.search [--reads N] [--faces M] [--json OUT] [--plot PNG]``

The fill goes through the engine's own writer layout (the EventStore Lua scripts, pipelined EVALSHA), so the
indexes are exactly the production ones. Plates follow real formats (``1กข1234``, ``กข1234``, commercial
``70-1234`` stored normalised as ``701234``, motorcycle ``กขค123``) with skewed series letters, real provinces
(Bangkok-heavy), Zipf-like sightings per plate and 3% OCR look-alike misreads. Faces are 128-d unit vectors
around synthetic identities. Timings are per query (p50/p95 ms); baselines are linear scans in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from pipeline.events import FaceEvent, PlateEvent
from pipeline.plates.provinces import PROVINCES
from pipeline.search.faces import FaceIndex
from pipeline.search.fuzzy import LOOKALIKE_CLASSES, plate_distance
from pipeline.search.grams import compile_query
from pipeline.search.plates import PlateFilters, PlateSearcher
from pipeline.store import EventStore, keys
from pipeline.store.events import _FACE_LUA, _PLATE_LUA

CONSONANTS = "กขคฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ"
CAMERAS = [f"cam{i:02d}" for i in range(50)]
CLASSES = ["car", "car", "car", "car", "motorcycle", "truck", "bus"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, int]:
    """Start a private redis-server on a free loopback port."""
    port = _free_port()
    exe = shutil.which("redis-server") or sys.exit("redis-server is not installed")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


def make_plates(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct plates in real Thai formats with a skewed series-letter distribution."""
    weights = 1.0 / np.arange(1, len(CONSONANTS) + 1) ** 0.8
    weights /= weights.sum()
    plates: set[str] = set()
    while len(plates) < n:
        k = n - len(plates) + 16
        kind = rng.choice(4, size=k, p=[0.55, 0.2, 0.2, 0.05])
        letters = rng.choice(len(CONSONANTS), size=(k, 3), p=weights)
        nums = rng.integers(1, 10000, size=k)
        lead = rng.integers(1, 10, size=k)
        for i in range(k):
            a, b, c = (CONSONANTS[j] for j in letters[i])
            if kind[i] == 0:
                plates.add(f"{lead[i]}{a}{b}{nums[i]}")
            elif kind[i] == 1:
                plates.add(f"{a}{b}{nums[i]}")
            elif kind[i] == 2:
                plates.add(f"{rng.integers(10, 100)}{nums[i]:04d}")
            else:
                plates.add(f"{a}{b}{c}{nums[i] % 1000}")
    return sorted(plates)[:n]


def misread(rng: np.random.Generator, plate: str) -> str:
    """One OCR look-alike substitution (or a random one when the plate has no look-alike character)."""
    classes = {ch: g for g in LOOKALIKE_CLASSES for ch in g}
    spots = [i for i, ch in enumerate(plate) if ch in classes and len(classes[ch]) > 1]
    if spots:
        i = spots[rng.integers(len(spots))]
        choices = [c for c in classes[plate[i]] if c != plate[i] and not c.isascii()] or [plate[i]]
        return plate[:i] + choices[rng.integers(len(choices))] + plate[i + 1:]
    i = int(rng.integers(len(plate)))
    return plate[:i] + CONSONANTS[rng.integers(len(CONSONANTS))] + plate[i + 1:]


def fill_plates(client: redis.Redis, reads: int, distinct: int, seed: int = 1, batch: int = 2000) -> list[str]:
    """Write ``reads`` plate events of ``distinct`` plates through the EventStore Lua script, pipelined."""
    rng = np.random.default_rng(seed)
    plates = make_plates(rng, distinct)
    popularity = rng.pareto(1.5, size=distinct) + 0.2  # most plates seen a few times, a few seen very often
    popularity /= popularity.sum()
    sha = client.script_load(_PLATE_LUA)
    t0 = now = time.time()
    start = now - 30 * 86400
    province_w = np.array([40.0] + [60.0 / (len(PROVINCES) - 1)] * (len(PROVINCES) - 1))
    province_of = rng.choice(len(PROVINCES), size=distinct, p=province_w / province_w.sum())
    done = 0
    while done < reads:
        k = min(batch, reads - done)
        idx = rng.choice(distinct, size=k, p=popularity)
        times = np.sort(rng.uniform(start, now, size=k))
        noisy = rng.random(k) < 0.03
        cams = rng.integers(len(CAMERAS), size=k)
        confs = rng.uniform(0.4, 1.0, size=k).round(3)
        classes = rng.integers(len(CLASSES), size=k)
        pipe = client.pipeline(transaction=False)
        for j in range(k):
            plate = plates[idx[j]]
            if noisy[j]:
                plate = misread(rng, plate)
            prov = PROVINCES[province_of[idx[j]]]
            ft = float(times[j])
            event = PlateEvent.model_construct(
                event_id=f"b{done + j:012d}", version=1, camera_id=CAMERAS[cams[j]], track_id=done + j,
                started_at=ft - 2, ended_at=ft + 1, frame_time=ft, plate_text=plate, province=prov.thai,
                province_latin=prov.latin, confidence=float(confs[j]), candidates=[], agreeing_frames=5,
                total_frames=6, vehicle_class=CLASSES[classes[j]],
                               vehicle_box=[100.0, 200.0, 400.0, 500.0], plate_box=[200.0, 420.0, 300.0, 460.0],
                               snapshot_path=f"snapshots/cam/{done + j}.jpg", crop_path=f"crops/cam/{done + j}.jpg")
            script_keys, argv = EventStore.plate_args(event, "", 100_000_000)
            pipe.evalsha(sha, len(script_keys), *script_keys, *argv)
        pipe.execute()
        done += k
        if done % (batch * 25) == 0 or done == reads:
            rate = done / max(time.time() - t0, 1e-9)
            print(f"  plates {done:>10,}/{reads:,}  {rate:,.0f} reads/s", file=sys.stderr, flush=True)
    return plates


def fill_faces(client: redis.Redis, faces: int, seed: int = 2, batch: int = 2000) -> np.ndarray:
    """Write ``faces`` face events around synthetic identities; returns the identity centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(faces // 20, 10), 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sha = client.script_load(_FACE_LUA)
    t0, done = time.time(), 0
    while done < faces:
        k = min(batch, faces - done)
        who = rng.integers(len(centres), size=k)
        emb = centres[who] + rng.normal(scale=0.05, size=(k, 128)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        pipe = client.pipeline(transaction=False)
        for j in range(k):
            t = t0 - rng.uniform(0, 30 * 86400)
            event = FaceEvent.model_construct(
                event_id=f"f{done + j:012d}", version=1, camera_id=CAMERAS[rng.integers(len(CAMERAS))],
                track_id=done + j, started_at=t, ended_at=t, frame_time=t, embedding=emb[j], quality=0.8,
                det_score=0.9, face_box=[1.0, 2.0, 3.0, 4.0], snapshot_path=None, crop_path=f"faces/{done + j}.jpg")
            script_keys, argv = EventStore.face_args(event, 100_000_000)
            pipe.evalsha(sha, len(script_keys), *script_keys, *argv)
        pipe.execute()
        done += k
        if done % (batch * 25) == 0 or done == faces:
            print(f"  faces  {done:>10,}/{faces:,}  {done / max(time.time() - t0, 1e-9):,.0f} faces/s",
                  file=sys.stderr, flush=True)
    return centres


def timed(fn, queries) -> list[float]:
    """Milliseconds per call of ``fn(q)`` for each query."""
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def run(reads: int, faces: int, queries: int, seed: int) -> dict:
    """Fill a private Redis, time every search kind, return the figures."""
    distinct = max(reads // 10, 100)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            client = redis.Redis(port=port)
            print(f"filling {reads:,} plate reads ({distinct:,} plates) and {faces:,} faces", file=sys.stderr)
            t = time.time()
            fill_plates(client, reads, distinct, seed)
            fill_s = time.time() - t
            mem_plates = client.info("memory")["used_memory"]
            t = time.time()
            centres = fill_faces(client, faces, seed + 1)
            face_fill_s = time.time() - t
            mem_total = client.info("memory")["used_memory"]
            stored = client.scard(keys.PLATE_DISTINCT)
            rng = np.random.default_rng(seed + 7)
            searcher = PlateSearcher(client)
            seen = [m.decode() for m in client.srandmember(keys.PLATE_DISTINCT, queries * 3)]
            pick = [seen[i] for i in rng.integers(len(seen), size=queries)]
            exact = timed(lambda q: searcher.events(searcher.search(q, mode="exact").hits), pick)
            partial_q = []
            for i, p in enumerate(pick):
                digits = "".join(c for c in p if c.isdigit())
                letters = "".join(c for c in p if not c.isdigit())
                kind = i % 4
                if kind == 0 and len(digits) >= 4:
                    partial_q.append(digits[-4:])
                elif kind == 1 and len(letters) >= 2:
                    partial_q.append(letters[:2])
                elif kind == 2:
                    partial_q.append(p[:-3] + "?" + p[-2:])
                else:
                    partial_q.append("*" + p[-4:])
            partial = timed(lambda q: searcher.events(searcher.search(q).hits), partial_q)
            fuzzy_q = [misread(rng, p) for p in pick]
            found = []

            def fuzzy_one(q: str) -> None:
                result = searcher.search(q, mode="fuzzy", max_distance=1.0)
                searcher.events(result.hits)
                found.append(result.plates_matched > 0)

            fuzzy = timed(fuzzy_one, fuzzy_q)
            filtered = timed(lambda q: searcher.search(q, filters=PlateFilters(cameras={"cam01", "cam02"})),
                             partial_q[: queries // 2])
            # baselines: linear scans over the distinct plates (partial in full, fuzzy over a sample, scaled)
            all_plates = [m.decode() for m in client.smembers(keys.PLATE_DISTINCT)]
            base_partial = timed(lambda q: [p for p in all_plates if compile_query(q).matches(p)], partial_q[:5])
            sample = all_plates[:20000]
            base_fuzzy = [ms * len(all_plates) / len(sample) for ms in
                          timed(lambda q: [p for p in sample if plate_distance(q, p) <= 1.0], fuzzy_q[:3])]
            index = FaceIndex(client)
            t = time.time()
            index.refresh()
            face_load_s = time.time() - t
            face_q = centres[rng.integers(len(centres), size=min(queries, 50))] if faces else []
            face = timed(lambda q: index.search(q, threshold=0.5, top_k=50), face_q)
            return {
                "reads": reads, "distinct_plates": int(stored), "faces": faces,
                "plate_fill_s": round(fill_s, 1), "plate_fill_rate": round(reads / max(fill_s, 1e-9)),
                "face_fill_s": round(face_fill_s, 1), "face_index_load_s": round(face_load_s, 1),
                "redis_used_memory_plates_mb": round(mem_plates / 2**20, 1),
                "redis_used_memory_total_mb": round(mem_total / 2**20, 1),
                "exact_p50_ms": pct(exact, 50), "exact_p95_ms": pct(exact, 95),
                "partial_p50_ms": pct(partial, 50), "partial_p95_ms": pct(partial, 95),
                "partial_filtered_p95_ms": pct(filtered, 95),
                "fuzzy_p50_ms": pct(fuzzy, 50), "fuzzy_p95_ms": pct(fuzzy, 95),
                "fuzzy_found_rate": float(np.mean(found)) if found else 0.0,
                "face_p50_ms": pct(face, 50), "face_p95_ms": pct(face, 95),
                "baseline_partial_scan_p50_ms": pct(base_partial, 50),
                "baseline_fuzzy_scan_p50_ms_extrapolated": pct(base_fuzzy, 50),
                "queries": queries,
            }
        finally:
            proc.kill()
            proc.wait(timeout=10)


def print_table(r: dict) -> None:
    """Print the figures as a table."""
    print(f"reads {r['reads']:,}  distinct plates {r['distinct_plates']:,}  faces {r['faces']:,}")
    print(f"fill {r['plate_fill_s']} s ({r['plate_fill_rate']:,} reads/s), faces {r['face_fill_s']} s, "
          f"face index load {r['face_index_load_s']} s")
    print(f"redis used_memory: plates {r['redis_used_memory_plates_mb']} MB, total {r['redis_used_memory_total_mb']} MB")
    print(f"{'search':<22}{'p50 ms':>10}{'p95 ms':>10}{'goal p95':>10}")
    for name, goal in (("exact", 10), ("partial", 10), ("fuzzy", 50), ("face", 200)):
        print(f"{name:<22}{r[name + '_p50_ms']:>10.2f}{r[name + '_p95_ms']:>10.2f}{goal:>10}")
    print(f"{'partial+camera filter':<22}{'':>10}{r['partial_filtered_p95_ms']:>10.2f}")
    print(f"baseline linear scan: partial {r['baseline_partial_scan_p50_ms']:.1f} ms, "
          f"fuzzy {r['baseline_fuzzy_scan_p50_ms_extrapolated']:.1f} ms (extrapolated from a 20k sample)")
    print(f"speed-up vs scan: partial x{r['baseline_partial_scan_p50_ms'] / max(r['partial_p50_ms'], 1e-9):.0f}, "
          f"fuzzy x{r['baseline_fuzzy_scan_p50_ms_extrapolated'] / max(r['fuzzy_p50_ms'], 1e-9):.0f}; "
          f"fuzzy found the true plate for {r['fuzzy_found_rate']:.0%} of misread queries")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000_000, help="plate reads to store (default 10M)")
    parser.add_argument("--faces", type=int, default=None, help="face events to store (default min(reads, 1M))")
    parser.add_argument("--queries", type=int, default=200, help="queries per search kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    faces = min(args.reads, 1_000_000) if args.faces is None else args.faces
    result = run(args.reads, faces, args.queries, args.seed)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
