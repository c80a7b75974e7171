"""The audit stream's writer, shared by the API and the command line (``pipeline export-clip``).

``audit`` is a Redis STREAM, never trimmed: one record per action, with user, action, time, client address,
parameters (JSON), result count and HTTP status. The API reads it (``api.store.ApiStore.read_audit``)."""

from __future__ import annotations

import json
import time
from typing import Any

AUDIT_STREAM = "audit"


def append_audit(client: Any, user: str, action: str, params: dict[str, Any], results: int | None = None,
                 status: int | None = None, ip: str = "") -> None:
    """Append one record to the audit stream (raises Redis' own errors)."""
    client.xadd(AUDIT_STREAM, {
        "user": user, "action": action, "at": repr(time.time()), "ip": ip,
        "params": json.dumps(params, ensure_ascii=False, default=str),
        "results": "" if results is None else str(results), "status": "" if status is None else str(status),
    })
