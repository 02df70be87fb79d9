"""One settings object, read from the environment (PITWALL_*), shared by every process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def redis_client(url: str, **kwargs):
    """The Redis client for a PITWALL_REDIS_URL: one server, a Cluster or a Sentinel set
    (engine.redisclient says which URL is which)."""
    from engine.redisclient import client_from_url

    return client_from_url(url, **kwargs)


def _env_int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: not an integer") from exc


def _env_switch(env: dict, name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{name}={raw!r}: not on/off")


def _env_list(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    return default if raw in (None, "") else tuple(x.strip() for x in raw.split(",") if x.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a PitWall process may be configured with; see README 'Configuration'."""

    redis_url: str | None = None          # None: PitWall starts and owns its own redis-server
    http_host: str = "127.0.0.1"
    http_port: int = 8050
    udp_host: str = "127.0.0.1"            # 0.0.0.0 to take a game console's packets
    udp_port: int = 20777
    data_dir: Path = field(default_factory=lambda: Path("var"))
    shards: int = 4                        # telemetry streams, hashed by car
    ring_size: int = 20_000                # ingest ring buffer (points)
    stream_maxlen: int = 200_000           # approximate MAXLEN per telemetry stream
    insight_ttl_s: int = 1800              # a car's live insight outlives its laps (98 s at Barber) and a red flag
    replay_data: Path = field(default_factory=lambda: REPO_ROOT / "data" / "grcup")
    models_dir: Path = field(default_factory=lambda: REPO_ROOT / "models")
    tracks_file: Path = field(default_factory=lambda: REPO_ROOT / "data" / "tracks.toml")
    # Access (issue 16; README 'Configuration'): auth is on unless PITWALL_AUTH=off says otherwise.
    auth: bool = True
    auth_allow_open: bool = False          # auth off on a non-loopback address needs this too
    secret: str | None = field(default=None, repr=False)  # signs sessions, tokens; unset: data_dir/secret
    origins: tuple[str, ...] = ()          # allowed Origins besides the server's own
    rate_api: str = "100/minute"
    rate_ingest: str = "20000/minute"
    rate_replay: str = "6/minute"
    udp_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # F1 feed: game crossings and alerts held while Redis is down (the oldest dropped, counted)
    f1_backlog_entries: int = 10_000
    f1_backlog_bytes: int = 8 * 2**20
    car_idle_s: int = 600                  # process stage: a car's state leaves memory after this long without a point

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        """Read PITWALL_* variables; unset ones keep their defaults."""
        env = dict(os.environ if env is None else env)
        return cls(
            redis_url=env.get("PITWALL_REDIS_URL") or None,
            http_host=env.get("PITWALL_HTTP_HOST") or "127.0.0.1",
            http_port=_env_int(env, "PITWALL_HTTP_PORT", 8050),
            udp_host=env.get("PITWALL_UDP_HOST") or "127.0.0.1",
            udp_port=_env_int(env, "PITWALL_UDP_PORT", 20777),
            data_dir=Path(env.get("PITWALL_DATA_DIR") or "var"),
            shards=_env_int(env, "PITWALL_SHARDS", 4),
            ring_size=_env_int(env, "PITWALL_RING_SIZE", 20_000),
            stream_maxlen=_env_int(env, "PITWALL_STREAM_MAXLEN", 200_000),
            insight_ttl_s=_env_int(env, "PITWALL_INSIGHT_TTL_S", 1800),
            replay_data=Path(env.get("PITWALL_REPLAY_DATA") or REPO_ROOT / "data" / "grcup"),
            models_dir=Path(env.get("PITWALL_MODELS_DIR") or REPO_ROOT / "models"),
            tracks_file=Path(env.get("PITWALL_TRACKS_FILE") or REPO_ROOT / "data" / "tracks.toml"),
            auth=_env_switch(env, "PITWALL_AUTH", True),
            auth_allow_open=_env_switch(env, "PITWALL_AUTH_ALLOW_OPEN", False),
            secret=env.get("PITWALL_SECRET") or None,
            origins=_env_list(env, "PITWALL_ORIGINS", ()),
            rate_api=env.get("PITWALL_RATE_API") or "100/minute",
            rate_ingest=env.get("PITWALL_RATE_INGEST") or "20000/minute",
            rate_replay=env.get("PITWALL_RATE_REPLAY") or "6/minute",
            udp_allow=_env_list(env, "PITWALL_UDP_ALLOW", ("127.0.0.0/8", "::1/128")),
            f1_backlog_entries=_env_int(env, "PITWALL_F1_BACKLOG_ENTRIES", 10_000),
            f1_backlog_bytes=_env_int(env, "PITWALL_F1_BACKLOG_BYTES", 8 * 2**20),
            car_idle_s=_env_int(env, "PITWALL_CAR_IDLE_S", 600),
        )

    def with_(self, **changes) -> "Settings":
        """A copy with some fields changed (settings are immutable)."""
        return replace(self, **changes)

    def env(self) -> dict[str, str]:
        """These settings as PITWALL_* variables, for child processes (not the access switches)."""
        out = {
            "PITWALL_HTTP_HOST": self.http_host,
            "PITWALL_HTTP_PORT": str(self.http_port),
            "PITWALL_UDP_HOST": self.udp_host,
            "PITWALL_UDP_PORT": str(self.udp_port),
            "PITWALL_DATA_DIR": str(self.data_dir),
            "PITWALL_SHARDS": str(self.shards),
            "PITWALL_RING_SIZE": str(self.ring_size),
            "PITWALL_STREAM_MAXLEN": str(self.stream_maxlen),
            "PITWALL_INSIGHT_TTL_S": str(self.insight_ttl_s),
            "PITWALL_REPLAY_DATA": str(self.replay_data),
            "PITWALL_MODELS_DIR": str(self.models_dir),
            "PITWALL_TRACKS_FILE": str(self.tracks_file),
            "PITWALL_F1_BACKLOG_ENTRIES": str(self.f1_backlog_entries),
            "PITWALL_F1_BACKLOG_BYTES": str(self.f1_backlog_bytes),
            "PITWALL_CAR_IDLE_S": str(self.car_idle_s),
        }
        if self.redis_url:
            out["PITWALL_REDIS_URL"] = self.redis_url
        # PITWALL_AUTH, PITWALL_AUTH_ALLOW_OPEN and PITWALL_SECRET are inherited from the
        # environment itself, never passed on by a settings object.
        out.update(PITWALL_ORIGINS=",".join(self.origins), PITWALL_RATE_API=self.rate_api,
                   PITWALL_RATE_INGEST=self.rate_ingest, PITWALL_RATE_REPLAY=self.rate_replay,
                   PITWALL_UDP_ALLOW=",".join(self.udp_allow))
        return out
