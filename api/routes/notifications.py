"""Alert webhooks (admin only): their delivery state and a test event (see :mod:`pipeline.notify.webhooks`)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, ApiStoreDep, RedisDep
from api.schemas.errors import ErrorOut
from api.schemas.notifications import WebhookStateOut, WebhookTestOut
from pipeline.config import WEBHOOK_NAME_PATTERN, Webhook
from pipeline.notify.webhooks import send_test, webhook_status

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/notifications", tags=["notifications"])


def configured_webhooks(request: Request) -> list[Webhook]:
    """The webhooks of the loaded cameras.yaml (none when it was not loaded)."""
    config = getattr(request.app.state, "camera_config", None)
    return list(config.notifications.webhooks) if config is not None else []


@router.get("", summary="Alert webhooks and their delivery state", response_model=list[WebhookStateOut])
def list_webhooks(request: Request, admin: Admin, client: RedisDep, store: ApiStoreDep) -> list[WebhookStateOut]:
    hooks = configured_webhooks(request)
    out = [WebhookStateOut(**webhook_status(client, hook)) for hook in hooks]
    store.audit(admin.username, "notifications_list", {}, len(out))
    return out


@router.post("/{name}/test", summary="Send a test event to a webhook (once, no retry)",
             response_model=WebhookTestOut,
             responses={404: {"model": ErrorOut, "description": "No webhook of this name."}})
async def test_webhook(request: Request, admin: Admin, client: RedisDep, store: ApiStoreDep,
                       name: Annotated[str, Path(pattern=WEBHOOK_NAME_PATTERN)]) -> WebhookTestOut:
    hook = next((h for h in configured_webhooks(request) if h.name == name), None)
    if hook is None:
        raise HTTPException(404, f"no webhook named {name} in notifications.webhooks")
    outcome = await run_in_threadpool(send_test, client, hook)
    await run_in_threadpool(store.audit, admin.username, "notifications_test",
                            {"name": name, "outcome": outcome.kind, "status": outcome.status})
    return WebhookTestOut(name=name, delivered=outcome.kind == "ok", outcome=outcome.kind, status=outcome.status,
                          error=outcome.error)
