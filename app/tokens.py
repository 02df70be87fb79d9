"""Scoped tokens: JWT signed with HS256 (PyJWT). The algorithm is fixed in `decode`, never read
from the token; the secret comes from PITWALL_SECRET, else a random one kept in the data directory."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path

import jwt

from app.roles import Principal, check_role, check_scopes

ALGORITHM = "HS256"
ISSUER = "pitwall"
MIN_SECRET = 32                 # characters; HS256 wants a key at least as long as its hash
DEFAULT_TTL_S = 30 * 24 * 3600


class TokenError(ValueError):
    """A token that is refused; the message says why (never the token itself)."""


def secret_for(settings) -> str:
    """PITWALL_SECRET, or the random secret in `data_dir/secret` (created 0600 on first use), so
    `pitwall token create` and the web server agree without configuration."""
    if settings.secret:
        if len(settings.secret) < MIN_SECRET:
            raise ValueError(f"PITWALL_SECRET: shorter than {MIN_SECRET} characters")
        return settings.secret
    path = Path(settings.data_dir) / "secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if len(value) < MIN_SECRET:
            raise ValueError(f"{path}: the secret is shorter than {MIN_SECRET} characters") from None
        return value
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def create(secret: str, role: str, scopes=None, ttl_s: float = DEFAULT_TTL_S, subject: str = "token",
           now: float | None = None) -> str:
    """A signed token for `role`, limited to `scopes` (None: the role's full rights), valid ttl_s."""
    check_role(role)
    scopes = check_scopes(scopes)
    if not ttl_s or ttl_s <= 0:
        raise ValueError(f"ttl: {ttl_s!r} must be a positive number of seconds")
    now = time.time() if now is None else now
    claims = {"iss": ISSUER, "sub": subject, "role": role, "iat": int(now), "exp": int(now + ttl_s),
              "jti": uuid.uuid4().hex}
    if scopes is not None:
        claims["scope"] = sorted(scopes)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str) -> Principal:
    """The principal a token stands for, or TokenError (expired, bad signature, wrong algorithm,
    missing claims, unknown role or scope)."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "role", "jti"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token: expired") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token: algorithm is not {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token: bad signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token: missing claim {exc.claim!r}") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"token: invalid ({type(exc).__name__})") from None
    try:
        role = check_role(claims["role"])
        raw = claims.get("scope")
        scopes = check_scopes(raw if isinstance(raw, list) else None if raw is None else [raw])
    except (ValueError, TypeError) as exc:
        raise TokenError(f"token: {exc}") from None
    kind = "kiosk" if scopes == frozenset({"kiosk"}) else "token"
    return Principal(str(claims["sub"]), role, kind, scopes, str(claims["jti"]))
