"""The audit trail (admin only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import Admin, ApiStoreDep
from api.routes.alerts import STREAM_ID
from api.schemas.misc import AuditOut

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=list[AuditOut], summary="Audit records, oldest first after a stream id (or newest first)",
            description="Every query (searches, histories with their reason, face searches with their reason, media, "
                        "exports, cases) and every refused or failed request, with user, client address, "
                        "parameters, result count and status. `order=newest` pages backwards from `after`.")
def read_audit(_: Admin, store: ApiStoreDep, after: Annotated[str | None, Query(pattern=STREAM_ID)] = None,
               user: Annotated[str | None, Query(max_length=64)] = None,
               action: Annotated[str | None, Query(max_length=64)] = None,
               order: Annotated[Literal["oldest", "newest"], Query()] = "oldest",
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditOut]:
    return [AuditOut(**r) for r in store.read_audit(after, limit, user, action, newest_first=order == "newest")]
