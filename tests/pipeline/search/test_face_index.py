"""In-process face index over a real Redis: float16 + float32 re-rank equals float32 brute force; incremental load."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from pipeline.events import FaceEvent
from pipeline.search.faces import FaceIndex
from pipeline.store import EventStore, keys

pytestmark = pytest.mark.timeout(120)


def faces(rng: np.random.Generator, centres: np.ndarray, n: int, start: int = 0, dim: int = 128
          ) -> tuple[list[FaceEvent], np.ndarray]:
    who = rng.integers(len(centres), size=n)
    emb = centres[who, :dim] + rng.normal(scale=0.05, size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    events = [FaceEvent(event_id=f"f{start + i}", camera_id=f"cam{i % 3}", track_id=i, started_at=10.0 + i,
                        ended_at=10.0 + i, frame_time=10.0 + start + i, embedding=emb[i].tolist(), quality=0.8,
                        det_score=0.9) for i in range(n)]
    return events, emb


def test_float16_index_ranks_like_float32_brute_force(client: redis.Redis) -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(60, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    events, emb = faces(rng, centres, 3000)
    EventStore(client).publish_face_events(events)
    half, full = FaceIndex(client, batch=700), FaceIndex(client, dtype="float32")
    assert half.refresh() == 3000 == full.refresh() and len(half) == 3000
    assert half.nbytes * 2 == full.nbytes
    for q in centres[:10]:
        truth = np.argsort(-(emb @ q), kind="stable")[:10]
        got = half.search(q, threshold=-1, top_k=10)
        assert [int(h.event_id[1:]) for h in got] == truth.tolist()
        assert np.allclose([h.similarity for h in got], (emb @ q)[truth], atol=1e-6)  # exact float32 values
        assert [h.event_id for h in got] == [h.event_id for h in full.search(q, threshold=-1, top_k=10)]
    q = centres[0]
    filtered = half.search(q, threshold=0.5, top_k=500, cameras={"cam1"}, start=500, end=2500)
    expected = {i for i in np.flatnonzero(emb @ q >= 0.5) if i % 3 == 1 and 490 <= i <= 2490}
    assert {int(h.event_id[1:]) for h in filtered} == expected and filtered


def test_refresh_is_incremental_and_follows_versions_and_trimming(client: redis.Redis) -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(5, 128)).astype(np.float32)
    store = EventStore(client, events_maxlen=1000)
    first, _ = faces(rng, centres, 300)
    store.publish_face_events(first)
    index = FaceIndex(client, batch=128)
    assert index.refresh() == 300 and index.refresh() == 0
    moved = first[0].model_copy(update={"version": 2, "embedding": (-centres[0] / np.linalg.norm(centres[0])).tolist()})
    store.publish_face_event(moved)
    assert index.refresh() == 1 and len(index) == 300  # the row was overwritten, not duplicated
    hit = index.search(-centres[0], threshold=0.99, top_k=5)
    assert [h.event_id for h in hit] == [first[0].event_id]
    more, _ = faces(rng, centres, 2000, start=300)
    store.publish_face_events(more)
    index.refresh()
    kept = client.xlen(keys.FACE_STREAM)
    assert kept < 2301 and len(index) == kept  # rows trimmed from the stream are masked out


def test_bad_embedding_size_is_skipped_and_bad_dtype_refused(client: redis.Redis) -> None:
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 128)).astype(np.float32)
    good, _ = faces(rng, centres, 5)
    odd, _ = faces(rng, centres, 1, start=5, dim=64)
    EventStore(client).publish_face_events(good + odd)
    index = FaceIndex(client)
    assert index.refresh() == 6 and len(index) == 5
    with pytest.raises(ValueError, match="size 64"):
        index.search(np.ones(64, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        FaceIndex(client, dtype="int4")


def test_a_malformed_first_embedding_does_not_set_the_dimension(client: redis.Redis) -> None:
    """The index takes its dimension from the embeddings most records hold, not from the first record's (an odd
    record first used to make every good one after it "the wrong size")."""
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(3, 128)).astype(np.float32)
    odd, _ = faces(rng, centres, 1, dim=64)
    good, emb = faces(rng, centres, 5, start=1)
    EventStore(client).publish_face_events(odd + good)
    index = FaceIndex(client)
    assert index.refresh() == 6 and len(index) == 5
    hits = index.search(emb[2], threshold=0.9, top_k=1)
    assert [h.event_id for h in hits] == ["f3"]
