"""Search benchmark: fills its own Redis with synthetic Thai plate reads and faces, then times the searches.

Usage: ``python -m benchmarks.search [--reads N] [--faces M] [--checkpoints N1,N2,...] [--json OUT] [--plot PNG]``

The fill goes through the engine's own writer (the EventStore Lua script, many events per call), so the indexes
are exactly the production ones; only the Python side is a fast path: the script arguments are formatted directly
instead of through pydantic, and :func:`fast_plate_args` is checked against :meth:`EventStore.plate_event_args` (the
test suite and every run compare a sample). Plates follow real formats (``1กข1234``, ``กข1234``, commercial
``701234``, motorcycle ``กขค123``) with skewed series letters, real provinces (Bangkok-heavy), Zipf-like sightings
per plate, 3% OCR look-alike misreads, and arrive in time order over 30 days like a live feed. Faces are 128-d unit
vectors around synthetic identities. The searches are timed at every checkpoint of one fill (p50/p95 ms per query),
with Redis ``used_memory`` per read; baselines are linear scans in the same run; face recall@10 is measured
against float32 brute force over the same embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import redis
from tqdm import tqdm

from pipeline.events import FaceEvent, PlateEvent
from pipeline.plates.fuzzy import LOOKALIKE_CLASSES, plate_distance
from pipeline.plates.grams import compile_query
from pipeline.plates.provinces import PROVINCES
from pipeline.search.faces import FaceIndex
from pipeline.search.plates import PlateFilters, PlateSearcher
from pipeline.store import EventStore, keys, normalise_plate
from pipeline.store.codec import _KINDS

CONSONANTS = "กขคฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ"
CAMERAS = [f"cam{i:02d}" for i in range(50)]
CLASSES = ["car", "car", "car", "car", "motorcycle", "truck", "bus"]
SPAN_S = 30 * 86400
MEMORY_STOP_BYTES = 16 * 2**30
"""The fill stops early (and the run is measured where it stopped) once the machine uses this much memory."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path, rdb: Path | None = None) -> tuple[subprocess.Popen, int]:
    """Start a private redis-server (no persistence) on a free loopback port, loading ``rdb`` if given."""
    port = _free_port()
    exe = shutil.which("redis-server") or sys.exit("redis-server is not installed")
    where = ["--dir", str(rdb.parent), "--dbfilename", rdb.name] if rdb else ["--dir", str(workdir)]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             *where], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200 if rdb is None else 12000):  # loading a 10M-read dump takes minutes
        try:
            client.ping()
            return proc, port
        except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
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
        series = rng.integers(10, 100, size=k)
        for i in range(k):
            a, b, c = (CONSONANTS[j] for j in letters[i])
            if kind[i] == 0:
                plates.add(f"{lead[i]}{a}{b}{nums[i]}")
            elif kind[i] == 1:
                plates.add(f"{a}{b}{nums[i]}")
            elif kind[i] == 2:
                plates.add(f"{series[i]}{nums[i]:04d}")
            else:
                plates.add(f"{a}{b}{c}{nums[i] % 1000}")
    return sorted(plates)[:n]


_CLASS_OF = {ch: g for g in LOOKALIKE_CLASSES for ch in g}


def misread(rng: np.random.Generator, plate: str) -> str:
    """One OCR look-alike substitution (or a random one when the plate has no look-alike character)."""
    spots = [i for i, ch in enumerate(plate) if ch in _CLASS_OF and len(_CLASS_OF[ch]) > 1]
    if spots:
        i = spots[rng.integers(len(spots))]
        choices = [c for c in _CLASS_OF[plate[i]] if c != plate[i] and not c.isascii()] or [plate[i]]
        return plate[:i] + choices[rng.integers(len(choices))] + plate[i + 1:]
    i = int(rng.integers(len(plate)))
    return plate[:i] + CONSONANTS[rng.integers(len(CONSONANTS))] + plate[i + 1:]


PLATE_FIELDS = tuple(_KINDS[PlateEvent])


def fast_plate_args(n: int, plate: str, camera: str, confidence: float, vclass: str, province: str,
                    province_latin: str, frame_time: float) -> list:
    """The writer-script arguments :meth:`EventStore.plate_event_args` gives for the benchmark's event ``n``
    (``plate`` already normalised), formatted directly (the codec's formats, field order and values)."""
    values = (f"b{n:012d}", "1", camera, str(n), repr(frame_time - 2), repr(frame_time + 1), repr(frame_time), plate,
              province, province_latin, repr(confidence), "[]", "5", "6", vclass, "[100.0,200.0,400.0,500.0]",
              "[200.0,420.0,300.0,460.0]", f"snapshots/cam/{n}.jpg", f"crops/cam/{n}.jpg")
    args: list = [f"b{n:012d}", 1, plate, camera, f"{confidence:.3f}", vclass, province, repr(frame_time),
                  len(PLATE_FIELDS)]
    for name, value in zip(PLATE_FIELDS, values, strict=True):
        args += [name, value]
    return args


def bench_event(n: int, plate: str, camera: str, confidence: float, vclass: str, province: str,
                province_latin: str, frame_time: float) -> PlateEvent:
    """The PlateEvent that :func:`fast_plate_args` encodes (to check the fast path against the store's)."""
    return PlateEvent(
        event_id=f"b{n:012d}", version=1, camera_id=camera, track_id=n, started_at=frame_time - 2,
        ended_at=frame_time + 1, frame_time=frame_time, plate_text=plate, province=province,
        province_latin=province_latin, confidence=confidence, candidates=[], agreeing_frames=5, total_frames=6,
        vehicle_class=vclass, vehicle_box=[100.0, 200.0, 400.0, 500.0], plate_box=[200.0, 420.0, 300.0, 460.0],
        snapshot_path=f"snapshots/cam/{n}.jpg", crop_path=f"crops/cam/{n}.jpg")


def check_fast_path(samples: list[tuple]) -> None:
    """Fail loudly if the fast arguments differ from the store's own encoding of the same events."""
    for sample in samples:
        fast = [str(a) for a in fast_plate_args(*sample)]
        store = [str(a) for a in EventStore.plate_event_args(bench_event(*sample))]
        if fast != store:
            raise AssertionError(f"benchmark fast path differs from EventStore.plate_event_args: {fast} != {store}")


class PlateFiller:
    """Writes plate reads in time order through the EventStore writer script, resumable between checkpoints."""

    def __init__(self, client: redis.Redis, reads: int, distinct: int, seed: int, batch: int = 500,
                 calls_per_round: int = 8):
        self.client = client
        self.reads = reads
        self.rng = np.random.default_rng(seed)
        self.plates = [normalise_plate(p) for p in make_plates(self.rng, distinct)]
        popularity = self.rng.pareto(1.5, size=distinct) + 0.2  # most plates seen a few times, a few very often
        self.cdf = np.cumsum(popularity / popularity.sum())
        weights = np.array([40.0] + [60.0 / (len(PROVINCES) - 1)] * (len(PROVINCES) - 1))
        self.province_of = self.rng.choice(len(PROVINCES), size=distinct, p=weights / weights.sum())
        self.store = EventStore(client, events_maxlen=max(reads * 2, 1000))
        self.sha = client.script_load(self.store._plate_script.script)
        self.batch = batch
        self.calls_per_round = calls_per_round
        self.start = time.time() - SPAN_S
        self.done = 0
        self.seconds = 0.0
        self.stopped_for_memory = False
        self.stopped_for_time = False
        self.deadline = float("inf")

    def sample(self, n: int) -> list[tuple]:
        """(fast-path arguments) of ``n`` reads like the fill's, for :func:`check_fast_path`."""
        out = []
        for j in range(n):
            p = PROVINCES[self.province_of[j]]
            out.append((j, self.plates[j], CAMERAS[j % 50], 0.5 + j / (2 * n), CLASSES[j % 7], p.thai, p.latin,
                        self.start + j * 1.37))
        return out

    def fill_to(self, target: int, bar: tqdm) -> None:
        """Write reads until ``target`` are stored (or the machine's memory reaches the stop line)."""
        t0 = time.time()
        while self.done < target:
            if psutil.virtual_memory().used > MEMORY_STOP_BYTES:
                self.stopped_for_memory = True
                break
            if time.time() > self.deadline:
                self.stopped_for_time = True
                break
            k = min(self.batch * self.calls_per_round, target - self.done)
            self._write(k)
            bar.update(k)
        self.seconds += time.time() - t0

    def _write(self, k: int) -> None:
        rng, base = self.rng, self.done
        idx = np.searchsorted(self.cdf, rng.random(k) * self.cdf[-1])
        times = self.start + (base + np.arange(k) + rng.random(k)) * (SPAN_S / self.reads)
        noisy = rng.random(k) < 0.03
        cams = rng.integers(len(CAMERAS), size=k)
        confs = rng.uniform(0.4, 1.0, size=k).round(3)
        classes = rng.integers(len(CLASSES), size=k)
        pipe = self.client.pipeline(transaction=False)
        calls: list[list] = []
        for j in range(k):
            plate = self.plates[idx[j]]
            if noisy[j]:
                plate = normalise_plate(misread(rng, plate))
            prov = PROVINCES[self.province_of[idx[j]]]
            calls.append(fast_plate_args(base + j, plate, CAMERAS[cams[j]], float(confs[j]), CLASSES[classes[j]],
                                         prov.thai, prov.latin, float(times[j])))
            if len(calls) == self.batch or j == k - 1:
                script_keys, argv = self.store.plate_script_call(calls)
                pipe.evalsha(self.sha, len(script_keys), *script_keys, *argv)
                calls = []
        pipe.execute()
        self.done += k


def fill_faces(client: redis.Redis, faces: int, seed: int, batch: int = 500) -> tuple[np.ndarray, np.ndarray, float]:
    """Write ``faces`` face events around synthetic identities (through the EventStore face writer, batched).

    Returns the identity centres, the float32 embeddings in write order and the seconds taken.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(faces // 20, 10), 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    store = EventStore(client, events_maxlen=max(faces * 2, 1000))
    sha = client.script_load(store._face_script.script)
    everything = np.zeros((faces, 128), np.float32)
    t0, done = time.time(), 0
    with tqdm(total=faces, desc="faces", unit="face", file=sys.stderr, mininterval=5) as bar:
        while done < faces:
            k = min(batch * 8, faces - done)
            who = rng.integers(len(centres), size=k)
            emb = centres[who] + rng.normal(scale=0.05, size=(k, 128)).astype(np.float32)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            everything[done:done + k] = emb
            pipe = client.pipeline(transaction=False)
            for s in range(0, k, batch):
                calls = []
                for j in range(s, min(s + batch, k)):
                    t = t0 - rng.uniform(0, SPAN_S)
                    event = FaceEvent.model_construct(
                        event_id=f"f{done + j:012d}", version=1, camera_id=CAMERAS[rng.integers(len(CAMERAS))],
                        track_id=done + j, started_at=t, ended_at=t, frame_time=t, embedding=emb[j], quality=0.8,
                        det_score=0.9, face_box=[1.0, 2.0, 3.0, 4.0], snapshot_path=None,
                        crop_path=f"faces/{done + j}.jpg")
                    calls.append(EventStore.face_event_args(event))
                script_keys, argv = store.face_script_call(calls)
                pipe.evalsha(sha, len(script_keys), *script_keys, *argv)
            pipe.execute()
            done += k
            bar.update(k)
    return centres, everything, time.time() - t0


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the Redis main thread has used."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


class Timer:
    """Wall time and CPU time (this process + the Redis main thread) of each query.

    On a heavily shared machine the wall time mostly measures the queue for the CPU; the CPU time is what the query
    itself costs (the latency on an idle machine, bar network and scheduling), so both are reported.
    """

    def __init__(self, client: redis.Redis):
        self.client = client
        gaps = []
        for _ in range(20):
            a = redis_cpu(client)
            gaps.append(redis_cpu(client) - a)
        self.overhead = float(np.median(gaps))  # the INFO call's own share

    def __call__(self, fn, queries) -> tuple[list[float], list[float]]:
        wall, cpu = [], []
        for q in queries:
            r0, p0, t0 = redis_cpu(self.client), time.process_time(), time.perf_counter()
            fn(q)
            t1, p1 = time.perf_counter(), time.process_time()
            r1 = redis_cpu(self.client)
            wall.append((t1 - t0) * 1000)
            cpu.append(max((p1 - p0) + (r1 - r0 - self.overhead), 0.0) * 1000)
        return wall, cpu


def timed(fn, queries) -> list[float]:
    """Milliseconds per call of ``fn(q)`` for each query."""
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t) * 1000)
    return out


def memory_breakdown(client: redis.Redis, distinct: int) -> dict:
    """MB per key family (MEMORY USAGE, sampled): stream, events hash, sighting sets, last-seen, n-gram/variant sets."""
    total = client.info("memory")["used_memory"]
    out = {"stream": client.memory_usage(keys.PLATE_STREAM, samples=200) or 0,
           "events_hash": client.memory_usage(keys.PLATE_EVENTS, samples=200) or 0,
           "last_seen": client.memory_usage(keys.PLATE_LAST_SEEN, samples=200) or 0}
    sample = [m.decode() for m in client.zrandmember(keys.PLATE_LAST_SEEN, 300)]
    per = [client.memory_usage(keys.plate_sightings(p), samples=0) or 0 for p in sample]
    out["sightings"] = int(np.mean(per) * distinct) if per else 0
    out["grams_variants_other"] = total - sum(out.values())
    return {k: round(v / 2**20, 1) for k, v in out.items()}


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def partial_queries(pick: list[str]) -> list[str]:
    """Operator queries from stored plates: last 4 digits, 2-letter series, one ``?``, ``*`` + suffix."""
    out = []
    for i, p in enumerate(pick):
        digits = "".join(c for c in p if c.isdigit())
        letters = "".join(c for c in p if not c.isdigit())
        kind = i % 4
        if kind == 0 and len(digits) >= 4:
            out.append(digits[-4:])
        elif kind == 1 and len(letters) >= 2:
            out.append(letters[:2])
        elif kind == 2:
            out.append(p[:-3] + "?" + p[-2:])
        else:
            out.append("*" + p[-4:])
    return out


def measure_plates(client: redis.Redis, filler: PlateFiller, queries: int, seed: int, baselines: bool) -> dict:
    """Time every plate search kind on what is stored now."""
    rng = np.random.default_rng(seed)
    info = client.info("memory")
    searcher = PlateSearcher(client)
    seen = [m.decode() for m in client.zrandmember(keys.PLATE_LAST_SEEN, queries * 3)]
    pick = [seen[i] for i in rng.integers(len(seen), size=queries)]
    timer = Timer(client)
    exact, exact_cpu = timer(lambda q: searcher.events(searcher.search(q, mode="exact").hits), pick)
    partial_q = partial_queries(pick)
    incomplete = []

    def partial_one(q: str) -> None:
        result = searcher.search(q)
        searcher.events(result.hits)
        incomplete.append(not result.complete)

    partial, partial_cpu = timer(partial_one, partial_q)
    fuzzy_q = [misread(rng, p) for p in pick]
    found = []

    def fuzzy_one(q: str) -> None:
        result = searcher.search(q, mode="fuzzy", max_distance=1.0)
        searcher.events(result.hits)
        found.append(result.plates_matched > 0)

    fuzzy, fuzzy_cpu = timer(fuzzy_one, fuzzy_q)
    filtered, _ = timer(lambda q: searcher.events(searcher.search(q, filters=PlateFilters(cameras={"cam01", "cam02"}))
                                                  .hits), partial_q[: max(queries // 2, 1)])
    stored = int(client.zcard(keys.PLATE_LAST_SEEN))
    out = {
        "reads": filler.done, "distinct_plates": stored, "fill_seconds": round(filler.seconds, 1),
        "fill_rate": round(filler.done / filler.seconds) if filler.seconds > 0 else 0,
        "redis_used_memory_mb": round(info["used_memory"] / 2**20, 1),
        "bytes_per_read": round(info["used_memory"] / max(filler.done, 1)),
        "load_average_1m": os.getloadavg()[0],
        "exact_p50_ms": pct(exact, 50), "exact_p95_ms": pct(exact, 95),
        "partial_p50_ms": pct(partial, 50), "partial_p95_ms": pct(partial, 95),
        "partial_answered_early": float(np.mean(incomplete)),
        "partial_filtered_p95_ms": pct(filtered, 95),
        "fuzzy_p50_ms": pct(fuzzy, 50), "fuzzy_p95_ms": pct(fuzzy, 95),
        "fuzzy_found_rate": float(np.mean(found)) if found else 0.0,
        "exact_cpu_p95_ms": pct(exact_cpu, 95), "partial_cpu_p95_ms": pct(partial_cpu, 95),
        "fuzzy_cpu_p95_ms": pct(fuzzy_cpu, 95), "partial_slowest_queries":
            [q for _, q in sorted(zip(partial, partial_q, strict=True), reverse=True)[:5]],
    }
    if baselines:
        all_plates = [m.decode() for m in client.zrange(keys.PLATE_LAST_SEEN, 0, -1)]
        base_partial = timed(lambda q: [p for p in all_plates if compile_query(q).matches(p)], partial_q[:3])
        sample = all_plates[:20000]
        base_fuzzy = [ms * len(all_plates) / len(sample) for ms in
                      timed(lambda q: [p for p in sample if plate_distance(q, p) <= 1.0], fuzzy_q[:3])]
        out["baseline_partial_scan_p50_ms"] = pct(base_partial, 50)
        out["baseline_fuzzy_scan_p50_ms_extrapolated"] = pct(base_fuzzy, 50)
        out["memory_mb_by_family"] = memory_breakdown(client, stored)
    return out


def measure_faces(client: redis.Redis, faces: int, queries: int, seed: int) -> dict:
    """Fill faces, load the index (float16 default and float32), time searches, recall@10 vs float32 brute force."""
    if faces == 0:
        return {"faces": 0, "face_p50_ms": float("nan"), "face_p95_ms": float("nan")}
    mem0 = client.info("memory")["used_memory"]
    centres, everything, fill_s = fill_faces(client, faces, seed)
    mem1 = client.info("memory")["used_memory"]
    out = {"face_fill_seconds": round(fill_s, 1), "face_bytes_per_face_redis": round((mem1 - mem0) / faces)}
    out.update(time_faces(client, faces, queries, seed, centres, everything))
    return out


def time_faces(client: redis.Redis, faces: int, queries: int, seed: int, centres: np.ndarray | None,
               everything: np.ndarray | None) -> dict:
    """Load the face index (float32 and the float16 default), time searches and recall@10 against float32 brute
    force (the written embeddings, or the float32 index's matrix when re-measuring a dump)."""
    rng = np.random.default_rng(seed + 5)
    out: dict = {"faces": faces}
    for dtype in ("float32", "float16"):
        index = FaceIndex(client, dtype=dtype)
        t = time.time()
        index.refresh()
        load_s = time.time() - t
        if everything is None:  # re-measuring a dump: the float32 index holds the exact embeddings, row = face n
            rows = np.array([int(e[1:]) for e in index._event_ids])
            everything = np.zeros((rows.max() + 1, index._dim), np.float32)
            everything[rows] = index._matrix[: len(rows)]
            centres = everything[rng.integers(len(rows), size=50)]
        if centres is None:
            raise ValueError("time_faces needs centres with the written embeddings")
        who = rng.integers(len(centres), size=min(queries, 50))
        face_q = centres[who] + rng.normal(scale=0.05, size=(len(who), centres.shape[1])).astype(np.float32)
        face_q /= np.linalg.norm(face_q, axis=1, keepdims=True)
        index.search(face_q[0], threshold=0.5, top_k=50)  # warm-up (first-call allocations), not timed
        ms, ms_cpu = Timer(client)(lambda q, ix=index: ix.search(q, threshold=0.5, top_k=50), face_q)
        recall = []
        for q in face_q:
            truth = set(np.argsort(-(everything @ q), kind="stable")[:10].tolist())
            got = {int(h.event_id[1:]) for h in index.search(q, threshold=-1.0, top_k=10)}
            recall.append(len(truth & got) / 10)
        prefix = "face" if dtype == "float16" else "face_float32"
        out.update({f"{prefix}_p50_ms": pct(ms, 50), f"{prefix}_p95_ms": pct(ms, 95),
                    f"{prefix}_cpu_p95_ms": pct(ms_cpu, 95),
                    f"{prefix}_index_load_s": round(load_s, 1), f"{prefix}_recall_at_10": float(np.mean(recall)),
                    f"{prefix}_matrix_mb": round(index.nbytes / 2**20, 1)})
        del index
    return out


def default_checkpoints(reads: int) -> list[int]:
    """Volumes measured on the way to ``reads``: 1-3-10 steps from 100k."""
    points, base = [], 100_000
    while base < reads:
        points += [p for p in (base, 3 * base) if p < reads]
        base *= 10
    return points + [reads]


def remeasure(rdb: Path, queries: int, seed: int) -> dict:
    """Re-time every search on a saved dump of a filled store (same data, current code), without filling again."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp), rdb)
        try:
            client = redis.Redis(port=port)
            reads = int(client.xlen(keys.PLATE_STREAM))
            t = time.time()
            EventStore(client).rebuild_series_index()  # a dump written before the series sets existed
            rebuild_s = time.time() - t
            filler = argparse.Namespace(done=reads, seconds=float("nan"))
            result = measure_plates(client, filler, queries, seed + 7, baselines=False)
            faces = int(client.xlen(keys.FACE_STREAM))
            if faces:
                result.update(time_faces(client, faces, queries, seed + 1, None, None))
            else:
                result.update({"faces": 0, "face_p50_ms": float("nan"), "face_p95_ms": float("nan")})
            result.update({"remeasured_dump": str(rdb), "series_index_rebuild_s": round(rebuild_s, 1),
                           "queries": queries, "curve": [dict(result)],
                           "redis_used_memory_total_mb": round(client.info("memory")["used_memory"] / 2**20, 1)})
            return result
        finally:
            proc.kill()
            proc.wait(timeout=30)


def run(reads: int, faces: int, queries: int, seed: int, checkpoints: list[int] | None = None,
        max_fill_s: float | None = None, progress_json: str | None = None) -> dict:
    """Fill a private Redis up to each checkpoint, time every search kind there, then the faces.

    The plate fill stops early (and is measured where it stopped) at ``max_fill_s`` seconds or at the memory line.
    """
    checkpoints = sorted({c for c in (checkpoints or default_checkpoints(reads)) if 0 < c <= reads} | {reads})
    distinct = max(reads // 10, 100)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            client = redis.Redis(port=port)
            print(f"filling {reads:,} plate reads ({distinct:,} plates) and {faces:,} faces; checkpoints "
                  f"{checkpoints}", file=sys.stderr)
            filler = PlateFiller(client, reads, distinct, seed)
            if max_fill_s:
                filler.deadline = time.time() + max_fill_s
            check_fast_path(filler.sample(50))
            curve = []
            with tqdm(total=reads, desc="plate reads", unit="read", file=sys.stderr, mininterval=5) as bar:
                for point in checkpoints:
                    filler.fill_to(point, bar)
                    stopped = filler.stopped_for_memory or filler.stopped_for_time
                    last = point == checkpoints[-1] or stopped
                    row = measure_plates(client, filler, queries, seed + 7, baselines=last)
                    curve.append(row)
                    if progress_json:
                        Path(progress_json).write_text(json.dumps({"partial": True, "curve": curve}, indent=2))
                    tqdm.write(f"  at {row['reads']:,} reads: exact p95 {row['exact_p95_ms']:.1f} ms, partial "
                               f"{row['partial_p95_ms']:.1f}, fuzzy {row['fuzzy_p95_ms']:.1f}, "
                               f"{row['bytes_per_read']} B/read, {row['fill_rate']:,} reads/s", file=sys.stderr)
                    if stopped:
                        why = "machine memory reached the stop line" if filler.stopped_for_memory else "fill time"
                        tqdm.write(f"  {why}: stopped and measured here", file=sys.stderr)
                        break
            result = dict(curve[-1])
            result.update(measure_faces(client, faces, queries, seed + 1))
            result.update({"reads_target": reads, "stopped_for_memory": filler.stopped_for_memory,
                           "stopped_for_time": filler.stopped_for_time, "load_average_1m_end": os.getloadavg()[0],
                           "queries": queries, "redis_used_memory_total_mb":
                           round(client.info("memory")["used_memory"] / 2**20, 1), "curve": curve})
            return result
        finally:
            proc.kill()
            proc.wait(timeout=30)


def print_table(r: dict) -> None:
    """Print the figures as a table (and the curve over volume)."""
    print(f"reads {r['reads']:,}  distinct plates {r['distinct_plates']:,}  faces {r['faces']:,}")
    if "remeasured_dump" in r:
        print(f"re-measured on the saved dump {r['remeasured_dump']} (no fill in this run)")
    print(f"fill {r['fill_seconds']} s ({r['fill_rate']:,} reads/s); redis used_memory {r['redis_used_memory_mb']} MB "
          f"= {r['bytes_per_read']} bytes/read; with faces {r['redis_used_memory_total_mb']} MB")
    print(f"{'search':<22}{'p50 ms':>10}{'p95 ms':>10}{'goal p95':>10}{'CPU p95':>10}  (CPU = client + Redis CPU time)")
    for name, goal in (("exact", 10), ("partial", 10), ("fuzzy", 50), ("face", 200)):
        print(f"{name:<22}{r[name + '_p50_ms']:>10.2f}{r[name + '_p95_ms']:>10.2f}{goal:>10}"
              f"{r.get(name + '_cpu_p95_ms', float('nan')):>10.2f}")
    print(f"{'partial+camera filter':<22}{'':>10}{r['partial_filtered_p95_ms']:>10.2f}")
    if r["faces"]:
        print(f"{'face float32 matrix':<22}{r['face_float32_p50_ms']:>10.2f}{r['face_float32_p95_ms']:>10.2f}")
        print(f"face index: float16 {r['face_matrix_mb']} MB, load {r['face_index_load_s']} s, recall@10 "
              f"{r['face_recall_at_10']:.3f} vs float32 brute force (float32 matrix: {r['face_float32_matrix_mb']} MB,"
              f" recall {r['face_float32_recall_at_10']:.3f})")
    if "baseline_partial_scan_p50_ms" in r:
        print(f"baseline linear scan: partial {r['baseline_partial_scan_p50_ms']:.1f} ms, "
              f"fuzzy {r['baseline_fuzzy_scan_p50_ms_extrapolated']:.1f} ms (extrapolated from a 20k sample)")
    print(f"fuzzy found the true plate for {r['fuzzy_found_rate']:.0%} of misread queries; "
          f"{r['partial_answered_early']:.0%} of partial queries were answered early (page full)")
    print(f"memory by key family (MB): {r.get('memory_mb_by_family')}")
    print(f"{'reads':>12}{'distinct':>10}{'B/read':>8}{'reads/s':>9}{'exact':>8}{'partial':>9}{'fuzzy':>8}"
          f"{'cpu:ex':>8}{'part':>7}{'fuzzy':>7}{'load':>6}  (p95 ms wall, then CPU; load = 1-min load average)")
    for c in r["curve"]:
        print(f"{c['reads']:>12,}{c['distinct_plates']:>10,}{c['bytes_per_read']:>8}{c['fill_rate']:>9,}"
              f"{c['exact_p95_ms']:>8.2f}{c['partial_p95_ms']:>9.2f}{c['fuzzy_p95_ms']:>8.2f}"
              f"{c['exact_cpu_p95_ms']:>8.2f}{c['partial_cpu_p95_ms']:>7.2f}{c['fuzzy_cpu_p95_ms']:>7.2f}"
              f"{c['load_average_1m']:>6.1f}")
    if r.get("stopped_for_time") or r.get("stopped_for_memory"):
        print(f"the fill stopped at {r['reads']:,} of {r['reads_target']:,} reads "
              f"({'memory line' if r['stopped_for_memory'] else 'time limit'})")


def plot(r: dict, path: str) -> None:
    """p95 per search kind and bytes per read against the number of stored reads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reads = [c["reads"] for c in r["curve"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, goal, colour in (("exact", 10, "C0"), ("partial", 10, "C1"), ("fuzzy", 50, "C2")):
        ax.plot(reads, [c[f"{name}_p95_ms"] for c in r["curve"]], "o-", color=colour, label=f"{name} p95 wall")
        ax.plot(reads, [c[f"{name}_cpu_p95_ms"] for c in r["curve"]], "s--", color=colour, alpha=0.6,
                label=f"{name} p95 CPU time")
        ax.axhline(goal, color=colour, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("stored plate reads")
    ax.set_ylabel("p95 latency (ms); dotted = goal")
    ax.set_yscale("log")
    ax.set_title("plate search p95 vs volume (shared 2-core machine)")
    ax.legend()
    ax2.plot(reads, [c["bytes_per_read"] for c in r["curve"]], "o-", color="C3")
    ax2.set_xscale("log")
    ax2.set_xlabel("stored plate reads")
    ax2.set_ylabel("Redis used_memory / reads (bytes)")
    ax2.set_title("memory per stored read")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000_000, help="plate reads to store (default 10M)")
    parser.add_argument("--faces", type=int, default=None, help="face events to store (default min(reads, 1M))")
    parser.add_argument("--queries", type=int, default=200, help="queries per search kind")
    parser.add_argument("--checkpoints", help="comma-separated read counts to measure on the way (default 1-3-10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rdb", help="re-time the searches on this saved dump of a filled store instead of filling")
    parser.add_argument("--max-fill-seconds", type=float, help="stop the plate fill after this long; measure there")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--plot", help="draw p95 and bytes per read against volume into this PNG")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (the private redis-server) on TERM
    faces = min(args.reads, 1_000_000) if args.faces is None else args.faces
    points = [int(float(x)) for x in args.checkpoints.split(",")] if args.checkpoints else None
    if args.rdb:
        result = remeasure(Path(args.rdb).resolve(), args.queries, args.seed)
    else:
        result = run(args.reads, faces, args.queries, args.seed, points, args.max_fill_seconds, args.json)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
