"""Conditions a running stage reports while it carries on (a full disk, a model it cannot load):
one Redis hash, component -> {"reason", "since"}, that /api/health lists until the stage clears it."""

from __future__ import annotations

import json
import logging
import time

import redis

from engine import keys

log = logging.getLogger("pitwall.conditions")


def raise_condition(client: redis.Redis, component: str, reason: str) -> None:
    """Say that `component` is degraded and why (kept from its first report until cleared)."""
    try:
        old = client.hget(keys.CONDITIONS, component)
        since = json.loads(old)["since"] if old else time.time()
        client.hset(keys.CONDITIONS, component, json.dumps({"reason": reason[:500], "since": since}))
    except (redis.RedisError, ValueError, KeyError) as exc:
        log.warning("condition of %s not reported (%s): %s", component, exc, reason)


def clear_condition(client: redis.Redis, component: str) -> None:
    """`component` is well again."""
    try:
        client.hdel(keys.CONDITIONS, component)
    except redis.RedisError as exc:
        log.warning("condition of %s not cleared (%s)", component, exc)


def read_conditions(client: redis.Redis) -> dict[str, dict]:
    """Every reported condition: component -> {"reason", "since"}."""
    out = {}
    for k, v in client.hgetall(keys.CONDITIONS).items():
        try:
            out[k.decode()] = json.loads(v)
        except ValueError:
            out[k.decode()] = {"reason": v.decode(errors="replace"), "since": None}
    return out
