"""Who owns a record that names its owner by user name (a case, an export job) across a deleted and re-created user.

A user deleted and re-created under the same name gets a new user record (a new ``created_at``, see
:meth:`api.store.ApiStore.put_user`), so the record stores, next to the owner's name, the ``created_at`` of the user
record that made it (:data:`OWNER_STAMP`): the new holder of the name does not inherit the old one's records.

A record from before owners were stamped belongs to the current holder of the name only if it is not older than
their user record (an older one was made by a deleted user of that name)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from api.store import ApiStore

logger = logging.getLogger(__name__)

OWNER_STAMP = "owner_created_at"
"""The record field holding ``created_at`` of the user record that made the record."""


def owner_stamp(store: ApiStore, username: str) -> str:
    """``created_at`` of the current record of ``username`` ('' for a record from before it was kept: such a record
    was never deleted and re-created since, as re-creating one always stamps it; '' too when there is none)."""
    record = store.get_user(username)
    return str(record.get("created_at") or "") if record else ""


def owns(record: Mapping[str, str], owner_field: str, username: str, stamp: str, kind: str) -> bool:
    """Whether ``username`` (whose user record has ``stamp``) made ``record``: the same name in ``owner_field`` and
    the same user record. ``kind`` names the record in the log ("case", "export")."""
    if record.get(owner_field) != username:
        return False
    if OWNER_STAMP in record:
        return record[OWNER_STAMP] == stamp
    return _legacy_owner(record, owner_field, stamp, kind)


def _legacy_owner(record: Mapping[str, str], owner_field: str, stamp: str, kind: str) -> bool:
    """Ownership of a record made before owners were stamped: the current holder of the name owns it only if their
    user record existed when the record was made. Unreadable times refuse (an admin still sees the record)."""
    if not stamp:
        return True
    try:
        return float(record["created_at"]) >= float(stamp)
    except (KeyError, ValueError):
        logger.warning("%s %s: owner %r cannot be confirmed (unreadable created_at); only admins see it",
                       kind, str(record.get("id"))[:64], record.get(owner_field))
        return False
