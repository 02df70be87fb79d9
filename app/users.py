"""Users and their password hashes in one JSON file (mode 0600, `data_dir/users.json`): never the
password itself, only a salted scrypt hash (hashlib, RFC 7914 parameters n=2^14, r=8, p=1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from functools import lru_cache
from pathlib import Path

from app.roles import check_role

N, R, P, DKLEN = 2 ** 14, 8, 1, 32
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, n: int = N) -> str:
    """`scrypt$n$r$p$salt$hash` for a password (base64 fields)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=R, p=P, dklen=DKLEN)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash from hash_password (constant-time comparison)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)), maxmem=128 * int(r) * int(n) * 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


class UserStore:
    """The users file, re-read when it changes on disk (`pitwall user add` while the server runs)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._users: dict[str, dict] = {}

    def _load(self) -> dict[str, dict]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._users = None, {}
            return self._users
        if mtime != self._mtime:
            self._users = json.loads(self.path.read_text() or "{}")
            self._mtime = mtime
        return self._users

    def get(self, name: str) -> dict | None:
        """The user's record ({role, hash, created_at}) or None."""
        with self._lock:
            return self._load().get(name)

    def names(self) -> list[dict]:
        """Every user's name and role (never the hash)."""
        with self._lock:
            return [{"name": k, "role": v["role"]} for k, v in sorted(self._load().items())]

    def add(self, name: str, role: str, password: str) -> None:
        """Create or replace a user; ValueError naming the field for a bad name, role or password."""
        if not NAME.match(name or ""):
            raise ValueError("name: 1-64 letters, digits or _ . @ -")
        check_role(role)
        if len(password or "") < MIN_PASSWORD:
            raise ValueError(f"password: at least {MIN_PASSWORD} characters")
        with self._lock:
            users = dict(self._load())
            users[name] = {"role": role, "hash": hash_password(password), "created_at": time.time()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(users, f, indent=1)
            os.replace(tmp, self.path)

    def check(self, name: str, password: str) -> str | None:
        """The user's role if the password is right, else None (same work for an unknown name)."""
        user = self.get(name)
        ok = verify_password(password, user["hash"] if user else _dummy())
        return user["role"] if user and ok else None


@lru_cache(maxsize=1)
def _dummy() -> str:
    return hash_password(secrets.token_urlsafe(12))


def store_for(settings) -> UserStore:
    """The users file of these settings: data_dir/users.json."""
    return UserStore(Path(settings.data_dir) / "users.json")
