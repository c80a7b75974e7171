"""Path parameters that name stored records, checked before they reach a Redis key name.

Records are keyed ``wl:{id}``, ``person:{id}``, ``case:{id}``, ``export:{id}``, ``user:{name}``; an id holding
``:`` would reach another record's key (``wl:<id>:entries``, ``case:<id>:items``, ``user:<name>:apikeys``), and
the bare words of the stores' own keys (``person:ids``, ``wl:ids``, ``wl:version``) would name those. Every id the
service makes is 16 hex digits (:func:`pipeline.store.watchlists.new_id`, case and export ids) and user names
follow :data:`api.schemas.auth.USERNAME`; an id of letters, digits, ``_`` and ``-`` other than those words is let
through to the store (which answers 404 when it holds no such record), anything else cannot name a record and is
answered like an unknown one (404) before the store is touched, after the caller is authenticated (an anonymous
request still gets 401 first). Ids given in a request body are checked the same way (:func:`known_person_id`).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, HTTPException, Path, status

from api.deps import CurrentUser
from api.schemas.auth import USERNAME

STORE_ID = re.compile(r"[0-9a-f]{16}")
"""The shape of the ids the service makes."""
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a record id may hold: never a key separator."""
RESERVED = frozenset({"ids", "version"})
"""Words that name a store's own keys (``person:ids``, ``wl:ids``, ``wl:version``), never a record."""
_USERNAME = re.compile(USERNAME)


def _known_shape(kind: str, pattern: re.Pattern[str], value: str, reserved: frozenset[str] = RESERVED) -> str:
    if not pattern.fullmatch(value) or value in reserved:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} {value!r} not found")
    return value


def known_person_id(person_id: str) -> str:
    """A person id given in a request body (a face watchlist entry's ``person_id``), checked like a path id: 404,
    as for an unknown person, when it cannot name one (a key separator, or ``ids``: the persons' index set, which
    answered WRONGTYPE and a 503)."""
    return _known_shape("person", SAFE_ID, person_id)


def _watchlist_id(watchlist_id: Annotated[str, Path(description="A watchlist's id.")],
                  _: CurrentUser) -> str:
    return _known_shape("watchlist", SAFE_ID, watchlist_id)


def _entry_id(entry_id: Annotated[str, Path(description="A watchlist entry's id.")],
              _: CurrentUser) -> str:
    return _known_shape("entry", SAFE_ID, entry_id)


def _person_id(person_id: Annotated[str, Path(description="An enrolled person's id.")],
               _: CurrentUser) -> str:
    return _known_shape("person", SAFE_ID, person_id)


def _case_id(case_id: Annotated[str, Path(description="A case's id.")], _: CurrentUser) -> str:
    return _known_shape("case", SAFE_ID, case_id)


def _job_id(job_id: Annotated[str, Path(description="An export's id.")], _: CurrentUser) -> str:
    return _known_shape("export", SAFE_ID, job_id)


def _username(username: Annotated[str, Path(description="A user name.")], _: CurrentUser) -> str:
    return _known_shape("user", _USERNAME, username, frozenset())


WatchlistId = Annotated[str, Depends(_watchlist_id)]
EntryId = Annotated[str, Depends(_entry_id)]
PersonId = Annotated[str, Depends(_person_id)]
CaseId = Annotated[str, Depends(_case_id)]
ExportId = Annotated[str, Depends(_job_id)]
Username = Annotated[str, Depends(_username)]
