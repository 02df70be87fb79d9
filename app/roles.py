"""Who may do what: roles (Grafana's Viewer / Editor / Admin), token scopes, and the principal a
request runs as. Pure: no Flask, no Redis."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("viewer", "engineer", "admin")      # each role can do everything the ones before it can
SCOPES = ("read", "ingest", "kiosk", "metrics")


@dataclass(frozen=True)
class Principal:
    """The caller: a logged-in user, a token, the kiosk cookie, anonymous or open access (auth off).
    `scopes` None means the role's full rights; a token made with --scope carries only those."""

    name: str
    role: str | None
    kind: str                       # user | token | kiosk | anonymous | open
    scopes: frozenset[str] | None = None
    token_id: str | None = None

    @property
    def authenticated(self) -> bool:
        """Whether this user has logged in with a role."""
        return self.role is not None

    def at_least(self, role: str) -> bool:
        """Whether this principal's role is `role` or above."""
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(role)

    def covers(self, scopes: frozenset[str]) -> bool:
        """Whether the principal's scopes allow a request that any of `scopes` would allow."""
        return self.scopes is None or bool(self.scopes & scopes)


ANONYMOUS = Principal("anonymous", None, "anonymous")
OPEN = Principal("open access", "admin", "open")


def check_role(role: str) -> str:
    """`role` if it is one of ROLES, else ValueError naming the field."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_scopes(scopes) -> frozenset[str] | None:
    """The scopes as a frozenset (None: no restriction), ValueError for an unknown one."""
    if scopes is None:
        return None
    out = frozenset(scopes)
    bad = sorted(out - set(SCOPES))
    if bad:
        raise ValueError(f"scope: {bad[0]!r} is not one of {', '.join(SCOPES)}")
    if not out:
        raise ValueError("scope: an empty list of scopes allows nothing")
    return out
