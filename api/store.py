"""API-side Redis state: users, tokens, API keys, login rate limits, audit stream, export jobs and cases.

Keys
----
``users``                    SET     user names.
``user:{name}``              HASH    username, password (scrypt hash), role, cameras (JSON list or ""), created_at,
                                     gen (session generation: random, replaced whenever the user's sessions are
                                     revoked), must_change ("1" until the user has set their own password),
                                     disabled ("1": cannot sign in, no token or key of theirs works).
``token:{sha256(token)}``    STRING  JSON {u: user name, g: gen, s: last seen (epoch s), i: idle timeout (s)};
                                     EX = session TTL, the absolute lifetime (opaque bearer tokens, only hashes
                                     stored). A token is valid only while ``g`` equals the user's current gen, so a
                                     revocation (or deleting and re-creating the name) ends every older token at once,
                                     and only while it was used within ``i`` seconds (``s`` is rewritten, KEEPTTL, at
                                     most every :data:`SEEN_REFRESH_S`).
``apikey:{sha256(key)}``     STRING  JSON {key_id, username, name, created_at, expires_at, gen, scope}; EX = expiry
                                     (keys made before lifetimes were bounded may have none).
``user:{name}:apikeys``      HASH    key_id -> sha256(key).
``rl:login:{key}``           HASH    failures, until: failed logins of one (user, address group) pair
                                     (``u:{name}|ip:{group}``), one address group (``ip:{group}``) or one account
                                     from every address (``acct:{name}``), with the time before which further
                                     attempts are refused (exponential backoff; groups: :func:`api.limits.login_address`).
``rl:login:{key}:pending``   STRING  login attempts under that key still being checked (they count as failures).
``rl:known:{name}``          ZSET    address groups where the user signed in successfully -> last success (epoch s);
                                     attempts from these skip the per-account limit.
``bootstrap:admin``          STRING  set once when the first-run admin was created (only one process creates it).
``audit``                    STREAM  append-only: user, action, ip, params (JSON), results, status, at.
``export:{job_id}``          HASH    job state: status, progress, camera_id, start, end, requester, owner_created_at (the
                                     requester's user-record created_at, :mod:`api.ownership`), path, sha256, error.
``exports``                  ZSET    job ids by creation time.
``case:{id}``                HASH    id, name, description, created_by, owner_created_at (as for exports), created_at.
``case:{id}:items``          HASH    item id -> JSON {kind: clip|plate|face, ref}.
``cases``                    ZSET    case ids by creation time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from typing import Any

import redis

from api.auditing import current_context
from pipeline.store.audit import AUDIT_STREAM, append_audit, audit_record
from pipeline.store.audit_spool import AuditSpool

logger = logging.getLogger(__name__)

ROLES = ("operator", "investigator", "admin")
API_KEY_SCOPES = ("full", "read")
"""What an API key may do: everything its owner may ("full"), or only reading requests (GET, HEAD; "read")."""


SESSION_IDLE_DEFAULT_S = 1800
"""Idle timeout of a token whose record does not carry one (issued before idle timeouts existed)."""
SEEN_REFRESH_S = 60.0
"""A token's last-seen time is rewritten at most this often (at most a quarter of its idle timeout): one Redis write
a minute per active session, not one per request."""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


SCRYPT_R, SCRYPT_P = 8, 1  # OWASP (2025): scrypt N=2^17, r=8, p=1 (N is the setting CCTV_SCRYPT_N)


def _maxmem(n: int, r: int, p: int) -> int:
    """Memory bound for hashlib.scrypt: 128*N*r bytes of V plus the blocks, with room to spare."""
    return 2 * 128 * r * (n + p) + 2**20


def hash_password(password: str, n: int) -> str:
    """Salted scrypt hash ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_maxmem(n, SCRYPT_R, SCRYPT_P), dklen=32)
    return "$".join(["scrypt", str(n), str(SCRYPT_R), str(SCRYPT_P), base64.b64encode(salt).decode(),
                     base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored scrypt hash."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        calc = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                              maxmem=_maxmem(int(n), int(r), int(p)), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(calc, base64.b64decode(digest))


def needs_rehash(stored: str, n: int) -> bool:
    """Whether a stored hash is weaker than the current parameters (smaller N, r or p, or not scrypt)."""
    try:
        kind, sn, sr, sp, _, _ = stored.split("$")
        return kind != "scrypt" or int(sn) < n or int(sr) < SCRYPT_R or int(sp) < SCRYPT_P
    except ValueError:
        return True


def token_hash(token: str) -> str:
    """SHA-256 of a token or API key (only hashes are stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


LOGIN_PENDING_TTL_S = 60
"""A login turn that was never ended (a killed worker) is given back after this long."""

# KEYS: n rate-limit hashes, then their n pending counters; ARGV: now, pending TTL, then n free-failure counts.
# Returns "0" (go on: every pending counter was incremented), the longest wait still to run under any key (seconds),
# or "-1" (busy: try in 1 s).
_LOGIN_BEGIN = """
local n = #KEYS / 2
local now = tonumber(ARGV[1])
local longest = 0
for i = 1, n do
  local wait = tonumber(redis.call('HGET', KEYS[i], 'until') or '0') - now
  if wait > longest then longest = wait end
end
if longest > 0 then return tostring(longest) end
for i = 1, n do
  local failures = tonumber(redis.call('HGET', KEYS[i], 'failures') or '0')
  local pending = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if pending > 0 and failures + pending >= tonumber(ARGV[2 + i]) then return '-1' end
end
for i = 1, n do
  redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], tonumber(ARGV[2]))
end
return '0'
"""
_LOGIN_END = """
for i = 1, #KEYS do
  if tonumber(redis.call('DECR', KEYS[i])) <= 0 then redis.call('DEL', KEYS[i]) end
end
return 0
"""


class _StoreFailed:
    """A stand-in Redis client whose every command fails at once with :class:`redis.ConnectionError` (see
    :meth:`ApiStore.audit`)."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise redis.ConnectionError(f"{name}: not tried, the event store just failed this request")

        return refuse


STORE_FAILED = _StoreFailed()


class ApiStore:
    """Users, sessions, API keys, rate limits and the audit trail in Redis."""

    def __init__(self, client: redis.Redis, scrypt_n: int = 2**17, audit_spool: AuditSpool | None = None):
        self.client = client
        self.scrypt_n = scrypt_n
        self.audit_spool = audit_spool  # the API's: audit records survive a Redis outage (None: Redis errors raise)
        self._dummy: str | None = None

    # -- users ------------------------------------------------------------------------------------------------
    def get_user(self, username: str) -> dict[str, Any] | None:
        """The user's record without the password hash, or None."""
        raw = self.client.hgetall(f"user:{username}")
        if not raw:
            return None
        user = {_s(k): _s(v) for k, v in raw.items()}
        user.pop("password", None)
        user["cameras"] = json.loads(user["cameras"]) if user.get("cameras") else None
        user["must_change"] = user.get("must_change") == "1"
        user["disabled"] = user.get("disabled") == "1"
        user.setdefault("gen", "")
        return user

    def find_user_casefold(self, username: str) -> str | None:
        """The name of an existing user that equals ``username`` but for case (itself included), or None."""
        wanted = username.casefold()
        return next((n for n in sorted(_s(m) for m in self.client.smembers("users")) if n.casefold() == wanted), None)

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable a user (every token and API key of theirs ends at once: :meth:`revoke_sessions`) or enable them
        again (they sign in with their password)."""
        self.client.hset(f"user:{username}", "disabled", "1" if disabled else "")
        if disabled:
            self.revoke_sessions(username)
        logger.info("%s user %s", "disabled" if disabled else "enabled", username)

    def list_users(self) -> list[dict[str, Any]]:
        """Every user, sorted by name."""
        names = sorted(_s(n) for n in self.client.smembers("users"))
        return [u for u in (self.get_user(n) for n in names) if u]

    def put_user(self, username: str, role: str, password: str | None = None,
                 cameras: list[str] | None = None, keep_cameras: bool = False,
                 must_change: bool | None = None) -> dict[str, Any]:
        """Create or update a user (a password is hashed with scrypt).

        A new password, role or camera limit revokes every session and API key of the user (see
        :meth:`revoke_sessions`); ``must_change`` sets or clears the first-login password-change flag."""
        before = self.get_user(username)
        mapping: dict[str, str] = {"username": username, "role": role}
        if not keep_cameras:
            mapping["cameras"] = json.dumps(cameras) if cameras is not None else ""
        if password is not None:
            mapping["password"] = hash_password(password, self.scrypt_n)
        if must_change is not None:
            mapping["must_change"] = "1" if must_change else ""
        if before is None:
            mapping["created_at"] = repr(time.time())
            mapping["gen"] = secrets.token_hex(8)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(f"user:{username}", mapping=mapping)
        pipe.sadd("users", username)
        pipe.execute()
        if before is not None and (password is not None or before["role"] != role
                                   or (not keep_cameras and before.get("cameras") != cameras)):
            self.revoke_sessions(username)
        return self.get_user(username)  # type: ignore[return-value]

    def revoke_sessions(self, username: str) -> None:
        """End every bearer token (new session generation) and delete every API key of a user."""
        hashes = [_s(h) for h in self.client.hvals(f"user:{username}:apikeys")]
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(f"user:{username}", "gen", secrets.token_hex(8))
        pipe.delete(f"user:{username}:apikeys", *[f"apikey:{h}" for h in hashes])
        pipe.execute()
        logger.info("revoked the sessions and %d API key(s) of %s", len(hashes), username)

    def delete_user(self, username: str) -> bool:
        """Delete a user and their API keys; their tokens stop validating at once (the generation is gone, and a
        re-created user of the same name gets a new one)."""
        hashes = [_s(h) for h in self.client.hvals(f"user:{username}:apikeys")]
        pipe = self.client.pipeline(transaction=True)
        pipe.srem("users", username)
        pipe.delete(f"user:{username}", f"user:{username}:apikeys", *[f"apikey:{h}" for h in hashes])
        return bool(pipe.execute()[0])

    def dummy_hash(self) -> str:
        """The hash unknown user names are checked against (current parameters; made once, at start-up)."""
        if self._dummy is None:
            self._dummy = hash_password(secrets.token_urlsafe(16), self.scrypt_n)
        return self._dummy

    def check_password(self, username: str, password: str) -> bool:
        """Whether the password is right: one scrypt computation whether or not the user exists (an unknown user
        is checked against a dummy hash of the current parameters), so timing does not tell names apart. A right
        password stored with weaker parameters than today's is re-hashed transparently."""
        stored = self.client.hget(f"user:{username}", "password")
        if stored is None:
            verify_password(password, self.dummy_hash())
            return False
        ok = verify_password(password, _s(stored))
        if ok and needs_rehash(_s(stored), self.scrypt_n):
            # only if the hash is still the one we checked (a concurrent password change wins)
            new = hash_password(password, self.scrypt_n)
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(f"user:{username}")
                    if pipe.hget(f"user:{username}", "password") == stored:
                        pipe.multi()
                        pipe.hset(f"user:{username}", "password", new)
                        pipe.execute()
                        logger.info("re-hashed the password of %s with the current scrypt parameters", username)
                except redis.WatchError:
                    pass
        return ok

    def create_first_admin(self, username: str = "admin") -> str | None:
        """First run: when no user exists, create ``username`` (admin) with a generated password that must be
        changed at first login, and return that password; None when users exist or another process did it."""
        if self.client.scard("users") > 0 or not self.client.set("bootstrap:admin", repr(time.time()), nx=True):
            return None
        password = secrets.token_urlsafe(12)
        self.put_user(username, "admin", password, must_change=True)
        return password

    # -- sessions and API keys --------------------------------------------------------------------------------
    def _gen(self, username: str) -> str | None:
        raw = self.client.hget(f"user:{username}", "gen")
        if raw is None:
            return None if not self.client.exists(f"user:{username}") else ""
        return _s(raw)

    def new_token(self, username: str, ttl_s: int, idle_s: int = SESSION_IDLE_DEFAULT_S) -> str:
        """Issue an opaque bearer token (stored hashed) bound to the user's session generation: it ends ``ttl_s``
        after issue (absolute lifetime) or once unused for ``idle_s`` seconds, whichever comes first."""
        token = secrets.token_urlsafe(32)
        record = json.dumps({"u": username, "g": self._gen(username) or "", "s": time.time(), "i": idle_s})
        self.client.set(f"token:{token_hash(token)}", record, ex=ttl_s)
        return token

    def token_user(self, token: str, idle_s: float | None = None) -> str | None:
        """The user name of a live token whose session generation is still the user's and that was used within its
        idle timeout, or None. ``idle_s`` is the timeout in force (CCTV_SESSION_IDLE_S now, applied to tokens issued
        before a change too); None: the one stored when the token was issued. A use refreshes the last-seen time
        (written at most every :data:`SEEN_REFRESH_S`)."""
        key = f"token:{token_hash(token)}"
        raw = self.client.get(key)
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("g") != self._gen(str(record.get("u"))):
            return None  # revoked, user deleted (or re-created), or a token of an older format
        now = time.time()
        try:
            seen = float(record.get("s", now))
            idle = float(idle_s if idle_s is not None else record.get("i", SESSION_IDLE_DEFAULT_S))
        except (TypeError, ValueError):
            return None
        if now - seen > idle:
            self.client.delete(key)
            logger.info("session of %s ended after %.0f s idle", record["u"], now - seen)
            return None
        if "s" not in record or now - seen >= min(SEEN_REFRESH_S, idle / 4):
            # XX: a token revoked meanwhile (logout) is not brought back; KEEPTTL: the absolute lifetime stays
            self.client.set(key, json.dumps(record | {"s": now}), xx=True, keepttl=True)
        return record["u"]

    def revoke_token(self, token: str) -> None:
        """Invalidate a bearer token."""
        self.client.delete(f"token:{token_hash(token)}")

    def new_api_key(self, username: str, name: str, expires_in_s: int | None = None,
                    scope: str = "full") -> tuple[str, dict[str, Any]]:
        """Create an API key for an integrator (the routes always give an expiry; ``scope`` "read" limits it to
        reading requests); the key is returned once and stored only hashed, bound to the user's session
        generation."""
        if scope not in API_KEY_SCOPES:
            raise ValueError(f"unknown API key scope {scope!r}")
        key = "cctv_" + secrets.token_urlsafe(32)
        now = time.time()
        meta = {"key_id": secrets.token_hex(8), "username": username, "name": name, "created_at": now,
                "expires_at": now + expires_in_s if expires_in_s else None, "gen": self._gen(username) or "",
                "scope": scope}
        digest = token_hash(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(f"apikey:{digest}", json.dumps(meta), ex=expires_in_s or None)
        pipe.hset(f"user:{username}:apikeys", meta["key_id"], digest)
        pipe.execute()
        return key, meta

    def api_key_meta(self, key: str) -> dict[str, Any] | None:
        """The metadata of a live API key (``scope`` filled in: "full" for keys made before scopes), or None
        (unknown, expired or revoked)."""
        raw = self.client.get(f"apikey:{token_hash(key)}")
        if not raw:
            return None
        meta = json.loads(raw)
        if meta.get("expires_at") and meta["expires_at"] <= time.time():
            return None
        if meta.get("gen", "") != self._gen(meta["username"]):
            return None
        meta.setdefault("scope", "full")
        return meta

    def api_key_user(self, key: str) -> str | None:
        """The user name an API key belongs to, or None (unknown, expired or revoked)."""
        meta = self.api_key_meta(key)
        return meta["username"] if meta else None

    def list_api_keys(self, username: str) -> list[dict[str, Any]]:
        """Metadata of a user's live API keys (expired ones are dropped from the user's list)."""
        ids_hashes = {_s(k): _s(h) for k, h in self.client.hgetall(f"user:{username}:apikeys").items()}
        out = []
        for key_id, digest in ids_hashes.items():
            raw = self.client.get(f"apikey:{digest}")
            if raw is None:
                self.client.hdel(f"user:{username}:apikeys", key_id)
                continue
            meta = json.loads(raw)
            meta.setdefault("expires_at", None)
            meta.setdefault("scope", "full")
            if not isinstance(meta.get("created_at"), (int, float)):
                meta["created_at"] = 0.0  # a damaged record: listed as made at the epoch (so shown expired), never a 500
            meta.pop("gen", None)
            out.append(meta)
        return sorted(out, key=lambda m: m["created_at"])

    def list_all_api_keys(self, username: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every user's API keys (or one user's), for admins."""
        names = [username] if username else sorted(_s(n) for n in self.client.smembers("users"))
        return [m for n in names for m in self.list_api_keys(n)]

    def api_key_owner(self, key_id: str) -> str | None:
        """The user an API key id belongs to, or None."""
        for name in self.client.smembers("users"):
            if self.client.hexists(f"user:{_s(name)}:apikeys", key_id):
                return _s(name)
        return None

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

    # -- login backoff ----------------------------------------------------------------------------------------
    def login_begin(self, limits: dict[str, int]) -> int | None:
        """Take a turn for one login attempt under every key of ``limits`` (key -> free failures), atomically with
        the wait check: None when the attempt may go on (then call :meth:`login_end` once it is counted), else the
        seconds to wait. Attempts still being checked count as failures, so once a key has used its free failures
        only one attempt at a time runs under it: a burst of parallel guesses cannot all slip past the wait while
        the first ones are still hashing (each would otherwise be a free guess)."""
        keys = [f"rl:login:{k}" for k in limits] + [f"rl:login:{k}:pending" for k in limits]
        args = [repr(time.time()), LOGIN_PENDING_TTL_S, *limits.values()]
        wait = float(_s(self.client.eval(_LOGIN_BEGIN, len(keys), *keys, *args)))
        return None if wait == 0 else max(1, math.ceil(wait))

    def login_end(self, keys: list[str]) -> None:
        """End the turn :meth:`login_begin` gave (after the attempt's failure, if any, was counted)."""
        self.client.eval(_LOGIN_END, len(keys), *[f"rl:login:{k}:pending" for k in keys])

    def login_failed(self, key: str, free: int, base_s: float, max_s: float, window_s: int) -> float:
        """Count one failed login under ``key``; from the ``free``-th failure on, further attempts wait
        ``base_s * 2**(failures - free)`` seconds, at most ``max_s`` (never a permanent lockout). The count is
        forgotten ``window_s`` after the last failure's wait. Returns the wait set (0 if none)."""
        rkey = f"rl:login:{key}"
        failures = int(self.client.hincrby(rkey, "failures", 1))
        wait = min(max_s, base_s * 2 ** (failures - free)) if failures >= free else 0.0
        pipe = self.client.pipeline(transaction=True)
        if wait:
            pipe.hset(rkey, "until", repr(time.time() + wait))
        pipe.expire(rkey, int(window_s + wait) + 1)
        pipe.execute()
        return wait

    def login_succeeded(self, key: str) -> None:
        """Forget the failures under ``key`` (a right password from that user and address)."""
        self.client.delete(f"rl:login:{key}")

    def login_known(self, username: str, group: str, keep_s: float) -> bool:
        """Whether ``username`` signed in successfully from address group ``group`` within the last ``keep_s``."""
        last = self.client.zscore(f"rl:known:{username}", group)
        return last is not None and float(last) > time.time() - keep_s

    def login_remember(self, username: str, group: str, keep_s: int, keep_n: int) -> None:
        """Remember a successful sign-in of ``username`` from ``group`` (kept ``keep_s`` seconds after the last, at
        most the ``keep_n`` most recent groups per user)."""
        key, now = f"rl:known:{username}", time.time()
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {group: now})
        pipe.zremrangebyscore(key, "-inf", now - keep_s)
        pipe.zremrangebyrank(key, 0, -keep_n - 1)
        pipe.expire(key, keep_s)
        pipe.execute()

    # -- audit ------------------------------------------------------------------------------------------------
    def audit(self, user: str, action: str, params: dict[str, Any], results: int | None = None,
              status: int | None = None, ip: str | None = None) -> None:
        """Append one record to the audit stream (never trimmed); the client address comes from the request's
        audit context (see :mod:`api.auditing`) unless given, and the request is marked as audited. With an
        :attr:`audit_spool`, a record Redis refuses waits on disk and is appended, with its time, once it is back.
        The record of a request that Redis just failed (refused 503, ``store_unavailable``) goes to the spool
        without asking Redis again: on a primary that hangs that would make the refusal wait a second command
        timeout (the spool's replay appends it once Redis answers)."""
        ctx = current_context()
        if ctx is not None:
            ctx.audited = True
            ip = ip or ctx.ip
        if self.audit_spool is None:
            append_audit(self.client, user, action, params, results, status, ip or "")
            return
        client = STORE_FAILED if ctx is not None and ctx.store_unavailable else self.client
        self.audit_spool.write(client, audit_record(user, action, params, results, status, ip or ""))

    def read_audit(self, after: str | None, limit: int, user: str | None, action: str | None,
                   newest_first: bool = False) -> list[dict[str, Any]]:
        """Audit records oldest first after ``after`` (a stream id), or newest first before it, filtered by
        user/action."""
        out: list[dict[str, Any]] = []
        start = (f"({after}" if after else "+") if newest_first else (f"({after}" if after else "-")
        if newest_first and after and not any(int(part) for part in after.split("-")):
            return out  # nothing is older than 0-0 (Redis refuses that exclusive bound: was a 503)
        while len(out) < limit:
            entries = (self.client.xrevrange(AUDIT_STREAM, start, "-", count=500) if newest_first
                       else self.client.xrange(AUDIT_STREAM, start, "+", count=500))
            if not entries:
                break
            for sid, fields in entries:
                rec = {_s(k): _s(v) for k, v in fields.items()}
                if (user and rec["user"] != user) or (action and rec["action"] != action):
                    continue
                out.append({"id": _s(sid), "user": rec["user"], "action": rec["action"], "at": float(rec["at"]),
                            "ip": rec.get("ip") or None, "params": json.loads(rec["params"]),
                            "results": int(rec["results"]) if rec["results"] else None,
                            "status": int(rec["status"]) if rec.get("status") else None})
                if len(out) >= limit:
                    break
            start = f"({_s(entries[-1][0])}"
        return out
