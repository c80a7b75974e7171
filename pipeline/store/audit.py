"""The audit stream's writer, shared by the API and the command line (``pipeline export-clip``).

``audit`` is a Redis STREAM, never trimmed: one record per action, with user, action, time, client address,
parameters (JSON), result count, HTTP status and a record id (``rid``). The API reads it
(``api.store.ApiStore.read_audit``). Records that could not be written during a Redis outage wait in the API's
audit spool (:mod:`pipeline.store.audit_spool`) and are appended later with their original time (``at``) and
``spooled`` set, exactly once (:func:`append_audit_once`)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

AUDIT_STREAM = "audit"
AUDIT_RID_PREFIX = "audit:rid:"
"""``audit:rid:<rid>`` STRING (the stream id) marks a spooled record as appended, so a replay repeated after a
crash appends it once."""
AUDIT_RID_KEEP_S = 400 * 86400
"""How long the marker of a replayed record is kept (longer than any outage a spool could outlive)."""

# append unless the record id was appended already; EXISTS then XADD then SET, so a failed XADD is never marked
_APPEND_ONCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return id
"""


def audit_record(user: str, action: str, params: dict[str, Any], results: int | None = None,
                 status: int | None = None, ip: str = "", at: float | None = None) -> dict[str, str]:
    """The stream fields of one audit record, with a fresh record id and the time ``at`` (now unless given)."""
    return {
        "user": user, "action": action, "at": repr(time.time() if at is None else at), "ip": ip,
        "params": json.dumps(params, ensure_ascii=False, default=str),
        "results": "" if results is None else str(results), "status": "" if status is None else str(status),
        "rid": uuid.uuid4().hex,
    }


def append_audit(client: Any, user: str, action: str, params: dict[str, Any], results: int | None = None,
                 status: int | None = None, ip: str = "") -> None:
    """Append one record to the audit stream (raises Redis' own errors)."""
    client.xadd(AUDIT_STREAM, audit_record(user, action, params, results, status, ip))


def append_audit_once(client: Any, record: dict[str, str]) -> bool:
    """Append a spooled ``record`` (fields of :func:`audit_record`, marked ``spooled``) unless a record with its
    ``rid`` was appended already; True when it was appended now (raises Redis' own errors)."""
    fields = [item for key, value in {**record, "spooled": "1"}.items() for item in (key, str(value))]
    added = client.eval(_APPEND_ONCE, 2, AUDIT_STREAM, AUDIT_RID_PREFIX + record["rid"], AUDIT_RID_KEEP_S,
                        *fields)
    return added is not None
