"""The audit trail (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admin, ApiStoreDep
from api.routes.alerts import STREAM_ID
from api.schemas.misc import AuditOut

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut], summary="Audit records, oldest first, after a stream id")
def read_audit(_: Admin, store: ApiStoreDep, after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
               user: Annotated[str | None, Query(max_length=64)] = None,
               action: Annotated[str | None, Query(max_length=64)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditOut]:
    return [AuditOut(**r) for r in store.read_audit(after, limit, user, action)]
