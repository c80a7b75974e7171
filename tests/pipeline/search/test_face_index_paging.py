"""FaceIndex.search_page: consecutive pages are the ranked hits cut in order, and ``has_more`` is exact."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from pipeline.events import FaceEvent
from pipeline.search.faces import FaceIndex
from pipeline.store import EventStore

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_pages_cut_the_ranking_in_order(client: redis.Redis, dtype: str) -> None:
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(40, 128)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    EventStore(client).publish_face_events([
        FaceEvent(event_id=f"f{i}", camera_id="cam", track_id=i, started_at=1.0, ended_at=1.0, frame_time=1.0 + i,
                  embedding=emb[i].tolist(), quality=0.8, det_score=0.9) for i in range(40)])
    index = FaceIndex(client, dtype=dtype)
    index.refresh()
    q = emb[0]
    ranked = [h.event_id for h in index.search(q, threshold=-1, top_k=100)]
    assert len(ranked) == 40
    got, offset = [], 0
    while True:
        page, more = index.search_page(q, threshold=-1, offset=offset, limit=7)
        got += [h.event_id for h in page]
        offset += len(page)
        if not more:
            break
        assert len(page) == 7
    assert got == ranked
    assert index.search_page(q, threshold=-1, offset=40, limit=7) == ([], False)
    assert index.search_page(q, threshold=-1, offset=33, limit=7)[1] is False
    assert index.search_page(q, threshold=-1, offset=32, limit=7)[1] is True
    with pytest.raises(ValueError):
        index.search_page(q, offset=-1)
