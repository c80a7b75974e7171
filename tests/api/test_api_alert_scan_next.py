"""A filtered alert listing stopped by the scan cap says where to go on (``X-Alerts-Scan-Next``), so that paging
reaches every matching alert however many others lie between, even when a page found none.

A camera-limited operator's listing is always such a scan: without the header, an operator whose cameras had no
alert among the newest CCTV_ALERT_FILTER_SCAN alerts saw an empty page and had no id to page back from."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.test_api_alert_filters import alert, ids, publish

pytestmark = pytest.mark.timeout(120)


def _pages(small: TestClient, headers: dict, params: dict, cursor: str) -> tuple[list[str], int]:
    """Every alert id the listing gives when followed page by page with ``X-Alerts-Scan-Next`` or the page's ids
    (``cursor``: 'before' or 'after'), and the number of requests."""
    found: list[str] = []
    query = dict(params)
    for n in range(1, 50):
        r = small.get("/api/alerts", params=query, headers=headers)
        assert r.status_code == 200, r.text
        rows = r.json()
        found += ids(rows)
        nxt = r.headers.get("X-Alerts-Scan-Next")
        if r.headers.get("X-Alerts-Scan-Complete") == "true" or not (rows or nxt):
            return found, n
        query[cursor] = nxt or (rows[0]["id"] if cursor == "before" else rows[-1]["id"])
    pytest.fail("paging did not end")


def test_a_limited_operator_pages_back_past_other_cameras_alerts(api_settings, tokens: dict,
                                                                 rclient: redis.Redis) -> None:
    [mine] = publish(rclient, [alert("e1", "w1", camera="walkway-01")])
    publish(rclient, [alert("e2", "w1") for _ in range(250)])  # other cameras' alerts, newer than the cap
    with TestClient(create_app(api_settings.model_copy(update={"alert_filter_scan": 100}))) as small:
        r = small.get("/api/alerts", headers=tokens["limited"])
        assert r.json() == [] and r.headers["X-Alerts-Scan-Complete"] == "false"
        assert r.headers["X-Alerts-Scan-Next"]
        found, requests = _pages(small, tokens["limited"], {}, "before")
        assert found == [mine.alert_id] and requests == 3


def test_a_filtered_listing_pages_forward_and_back_through_the_cap(api_settings, tokens: dict,
                                                                   rclient: redis.Redis) -> None:
    first = publish(rclient, [alert("e1", "w1")])
    publish(rclient, [alert("other", "w1") for _ in range(150)])
    last = publish(rclient, [alert("e1", "w1")])
    publish(rclient, [alert("other", "w1") for _ in range(150)])
    with TestClient(create_app(api_settings.model_copy(update={"alert_filter_scan": 100}))) as small:
        back, _ = _pages(small, tokens["op"], {"entry_id": "e1", "limit": 5}, "before")
        assert sorted(back) == sorted(a.alert_id for a in first + last)
        forward, _ = _pages(small, tokens["op"], {"entry_id": "e1", "limit": 5, "after": "0-0"}, "after")
        assert forward == [a.alert_id for a in first + last]
        complete = small.get("/api/alerts", params={"entry_id": "e1", "after": "0-0", "limit": 1},
                             headers=tokens["op"])
        assert complete.headers["X-Alerts-Scan-Complete"] == "true"
        assert "X-Alerts-Scan-Next" not in complete.headers  # limit reached: page on from the page's own ids


def test_openapi_documents_the_scan_next_header(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "X-Alerts-Scan-Next" in spec["paths"]["/api/alerts"]["get"]["responses"]["200"]["headers"]
