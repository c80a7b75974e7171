"""Every user's API keys, for admins: list and revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import Admin, ApiStoreDep, SettingsDep, key_expiry
from api.schemas.auth import USERNAME, ApiKeyOut
from api.schemas.errors import ErrorOut

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])
_ERRORS = {401: {"model": ErrorOut, "description": "Not authenticated."},
           403: {"model": ErrorOut, "description": "Needs the admin role."}}


@router.get("", response_model=list[ApiKeyOut], summary="Every user's API keys (without the keys)",
            description="`expires_at` is when a key ends: for a key made before every key had to expire, its "
                        "creation plus CCTV_API_KEY_MAX_DAYS.",
            responses=_ERRORS)
def list_all_api_keys(admin: Admin, store: ApiStoreDep, settings: SettingsDep,
                      username: Annotated[str | None, Query(pattern=USERNAME, description="Only this user's.")] = None,
                      ) -> list[ApiKeyOut]:
    keys = store.list_all_api_keys(username)
    store.audit(admin.username, "api_key_list", {"username": username}, len(keys))
    return [ApiKeyOut(**m | {"expires_at": key_expiry(m, settings.api_key_max_days)}) for m in keys]


@router.delete("/{key_id}", status_code=204, summary="Revoke anyone's API key",
               responses={**_ERRORS, 404: {"model": ErrorOut, "description": "No such key."}})
def revoke_api_key(key_id: str, admin: Admin, store: ApiStoreDep) -> None:
    owner = store.api_key_owner(key_id)
    if owner is None or not store.delete_api_key(owner, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id!r} not found")
    store.audit(admin.username, "api_key_revoke", {"key_id": key_id, "owner": owner})
