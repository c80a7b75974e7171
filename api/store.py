"""API-side Redis state: users, tokens, API keys, login rate limits, audit stream, export jobs and cases.

Keys
----
``users``                    SET     user names.
``user:{name}``              HASH    username, password (scrypt hash), role, cameras (JSON list or ""), created_at.
``token:{sha256(token)}``    STRING  user name; EX = session TTL (opaque bearer tokens, only hashes stored).
``apikey:{sha256(key)}``     STRING  JSON {key_id, username, name, created_at}.
``user:{name}:apikeys``      HASH    key_id -> sha256(key).
``rl:login:u:{name}``        STRING  attempts in the window (INCR + EXPIRE); ``rl:login:ip:{ip}`` likewise.
``audit``                    STREAM  append-only: user, action, params (JSON), results, at.
``export:{job_id}``          HASH    job state: status, progress, camera_id, start, end, requester, path, sha256, error.
``exports``                  ZSET    job ids by creation time.
``case:{id}``                HASH    id, name, description, created_by, created_at.
``case:{id}:items``          HASH    item id -> JSON {kind: clip|plate|face, ref}.
``cases``                    ZSET    case ids by creation time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

import redis

logger = logging.getLogger(__name__)

ROLES = ("operator", "investigator", "admin")
AUDIT_STREAM = "audit"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def hash_password(password: str, n: int) -> str:
    """Salted scrypt hash ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=2**27, dklen=32)
    return "$".join(["scrypt", str(n), "8", "1", base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored scrypt hash."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        calc = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                              maxmem=2**27, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(calc, base64.b64decode(digest))


def token_hash(token: str) -> str:
    """SHA-256 of a token or API key (only hashes are stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiStore:
    """Users, sessions, API keys, rate limits and the audit trail in Redis."""

    def __init__(self, client: redis.Redis, scrypt_n: int = 2**15):
        self.client = client
        self.scrypt_n = scrypt_n

    # -- users ------------------------------------------------------------------------------------------------
    def get_user(self, username: str) -> dict[str, Any] | None:
        """The user's record without the password hash, or None."""
        raw = self.client.hgetall(f"user:{username}")
        if not raw:
            return None
        user = {_s(k): _s(v) for k, v in raw.items()}
        user["cameras"] = json.loads(user["cameras"]) if user.get("cameras") else None
        return user

    def list_users(self) -> list[dict[str, Any]]:
        """Every user, sorted by name."""
        names = sorted(_s(n) for n in self.client.smembers("users"))
        return [u for u in (self.get_user(n) for n in names) if u]

    def put_user(self, username: str, role: str, password: str | None = None,
                 cameras: list[str] | None = None, keep_cameras: bool = False) -> dict[str, Any]:
        """Create or update a user (a password is hashed with scrypt)."""
        mapping: dict[str, str] = {"username": username, "role": role}
        if not keep_cameras:
            mapping["cameras"] = json.dumps(cameras) if cameras is not None else ""
        if password is not None:
            mapping["password"] = hash_password(password, self.scrypt_n)
        if not self.client.exists(f"user:{username}"):
            mapping["created_at"] = repr(time.time())
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(f"user:{username}", mapping=mapping)
        pipe.sadd("users", username)
        pipe.execute()
        return self.get_user(username)  # type: ignore[return-value]

    def delete_user(self, username: str) -> bool:
        """Delete a user and their API keys (their sessions expire on their own but stop validating)."""
        hashes = [_s(h) for h in self.client.hvals(f"user:{username}:apikeys")]
        pipe = self.client.pipeline(transaction=True)
        pipe.srem("users", username)
        pipe.delete(f"user:{username}", f"user:{username}:apikeys", *[f"apikey:{h}" for h in hashes])
        return bool(pipe.execute()[0])

    def check_password(self, username: str, password: str) -> bool:
        """Whether the password is right (runs the hash even for unknown users, against timing probes)."""
        stored = self.client.hget(f"user:{username}", "password")
        if stored is None:
            verify_password(password, hash_password("x", self.scrypt_n))
            return False
        return verify_password(password, _s(stored))

    # -- sessions and API keys --------------------------------------------------------------------------------
    def new_token(self, username: str, ttl_s: int) -> str:
        """Issue an opaque bearer token (stored hashed with a TTL)."""
        token = secrets.token_urlsafe(32)
        self.client.set(f"token:{token_hash(token)}", username, ex=ttl_s)
        return token

    def token_user(self, token: str) -> str | None:
        """The user name of a live token, or None."""
        raw = self.client.get(f"token:{token_hash(token)}")
        return _s(raw) if raw else None

    def revoke_token(self, token: str) -> None:
        """Invalidate a bearer token."""
        self.client.delete(f"token:{token_hash(token)}")

    def new_api_key(self, username: str, name: str) -> tuple[str, dict[str, Any]]:
        """Create an API key for an integrator; the key is returned once and stored only hashed."""
        key = "cctv_" + secrets.token_urlsafe(32)
        meta = {"key_id": secrets.token_hex(8), "username": username, "name": name, "created_at": time.time()}
        digest = token_hash(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(f"apikey:{digest}", json.dumps(meta))
        pipe.hset(f"user:{username}:apikeys", meta["key_id"], digest)
        pipe.execute()
        return key, meta

    def api_key_user(self, key: str) -> str | None:
        """The user name an API key belongs to, or None."""
        raw = self.client.get(f"apikey:{token_hash(key)}")
        return json.loads(raw)["username"] if raw else None

    def list_api_keys(self, username: str) -> list[dict[str, Any]]:
        """Metadata of a user's API keys."""
        hashes = [_s(h) for h in self.client.hvals(f"user:{username}:apikeys")]
        metas = [self.client.get(f"apikey:{h}") for h in hashes]
        return [json.loads(m) for m in metas if m]

    def delete_api_key(self, username: str, key_id: str) -> bool:
        """Revoke one API key; False if unknown."""
        digest = self.client.hget(f"user:{username}:apikeys", key_id)
        if digest is None:
            return False
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(f"apikey:{_s(digest)}")
        pipe.hdel(f"user:{username}:apikeys", key_id)
        pipe.execute()
        return True

    # -- rate limits ------------------------------------------------------------------------------------------
    def hit_rate_limit(self, key: str, limit: int, window_s: int) -> int | None:
        """Count one attempt; seconds to wait if over ``limit`` in the window, else None."""
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(f"rl:{key}")
        pipe.expire(f"rl:{key}", window_s, nx=True)
        pipe.ttl(f"rl:{key}")
        count, _, ttl = pipe.execute()
        return max(int(ttl), 1) if count > limit else None

    # -- audit ------------------------------------------------------------------------------------------------
    def audit(self, user: str, action: str, params: dict[str, Any], results: int | None = None) -> None:
        """Append one record to the audit stream (never trimmed)."""
        self.client.xadd(AUDIT_STREAM, {
            "user": user, "action": action, "at": repr(time.time()),
            "params": json.dumps(params, ensure_ascii=False, default=str),
            "results": "" if results is None else str(results),
        })

    def read_audit(self, after: str | None, limit: int, user: str | None, action: str | None) -> list[dict[str, Any]]:
        """Audit records oldest first after ``after`` (a stream id), filtered by user/action."""
        out: list[dict[str, Any]] = []
        start = f"({after}" if after else "-"
        while len(out) < limit:
            entries = self.client.xrange(AUDIT_STREAM, start, "+", count=500)
            if not entries:
                break
            for sid, fields in entries:
                rec = {_s(k): _s(v) for k, v in fields.items()}
                if (user and rec["user"] != user) or (action and rec["action"] != action):
                    continue
                out.append({"id": _s(sid), "user": rec["user"], "action": rec["action"], "at": float(rec["at"]),
                            "params": json.loads(rec["params"]),
                            "results": int(rec["results"]) if rec["results"] else None})
                if len(out) >= limit:
                    break
            start = f"({_s(entries[-1][0])}"
        return out
