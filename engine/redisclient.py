"""The Redis client every PitWall process uses, built from PITWALL_REDIS_URL (engine.settings.redis_client):

- `redis://HOST:PORT/DB`, `rediss://...`, `unix://...`: one server (redis-py's Redis);
- `redis://HOST:PORT[,HOST:PORT...]?cluster=true` (or `rediss://`): Redis Cluster (redis-py's
  RedisCluster), the nodes listed being where it starts discovering the cluster;
- `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]` (`rediss+sentinel://` for
  TLS): the master Sentinel names for SERVICE (redis-py's Sentinel), followed through failovers.

On a cluster every PitWall key carries a hash tag (engine.keys) so that what one Lua script touches
sits in one slot. What the cluster client cannot do is done here for every caller: a MULTI/EXEC
pipeline over keys of several slots runs as a plain pipeline (what it writes is keyed by session,
car and lap: a redelivery completes it), a PUBLISH queued on a pipeline is sent right after it,
and XREADGROUP over streams of several slots reads each stream in turn, polling until the block
time is over.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, unquote, urlparse

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

# A failover (a replica promoted when its master dies) takes a few seconds: ride through it.
FAILOVER_RETRY = dict(retries=12, backoff=(0.05, 1.0))
FAILOVER_S = 30.0      # how long a cluster command or pipeline keeps retrying a node that is gone
_GONE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
         redis.exceptions.TryAgainError)


def _until_failover(attempt, is_gone, refresh) -> object:
    """attempt() until is_gone(result) is false or FAILOVER_S passed, refresh() (the slot map)
    between tries; returns the last result."""
    deadline, wait = time.monotonic() + FAILOVER_S, 0.1
    while True:
        out = attempt()
        if not is_gone(out) or time.monotonic() > deadline:
            return out
        time.sleep(wait)
        wait = min(wait * 2, 1.0)
        try:
            refresh()
        except _GONE:
            continue


def _retry(retries: int = FAILOVER_RETRY["retries"]) -> Retry:
    lo, hi = FAILOVER_RETRY["backoff"]
    return Retry(ExponentialBackoff(cap=hi, base=lo), retries)


def _sentinel_retry() -> Retry:
    """Retries for a Sentinel set's clients, spread over FAILOVER_S: until the sentinels agree the
    master is down and promote a replica (down-after-milliseconds, then a vote: longer when the
    first vote splits), they name the dead master and every command meets a refused connection."""
    lo, hi = FAILOVER_RETRY["backoff"]
    backoff, n, waited = ExponentialBackoff(cap=hi, base=lo), 0, 0.0
    while waited < FAILOVER_S:
        n += 1
        waited += backoff.compute(n)
    return Retry(backoff, n)


def _nodes(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = netloc.rsplit("@", 1)[-1]
    out = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        out.append((host.strip("[]") or "127.0.0.1", int(port) if port else default_port))
    return out


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    if "@" not in netloc:
        return None, None
    user, _, password = netloc.rsplit("@", 1)[0].partition(":")
    return (unquote(user) or None), (unquote(password) or None)


class _AskSentinels:
    """A Sentinel-managed connection that asks the sentinels for the master at every (re)connect.
    redis-py reconnects a dropped connection (a command's or a pipeline's retry) to the address it
    had — after a failover, the dead master, until its retries run out — and retries a refused
    connect on that same address; here each connect is tried once, and the retry asks again."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        """Connect to the master the sentinels name now (one attempt: the caller's retry repeats it)."""
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class _SentinelConnection(_AskSentinels, SentinelManagedConnection):
    """_AskSentinels over TCP."""


class _SentinelSSLConnection(_AskSentinels, SentinelManagedSSLConnection):
    """_AskSentinels over TLS."""


def is_cluster(client) -> bool:
    """True for a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def execute_confirmed(pipe, masters: list, timeout_ms: int = 1000) -> tuple[list, dict]:
    """Run a cluster pipeline with a WAIT for one replica sent to each of `masters` after its writes,
    on the same connection (WAIT counts that connection's writes), without riding through a failover:
    returns (the writes' results, {master name: "acked" | "timeout" | "gone"}). "gone": that master
    died or failed over mid-way, so what it acknowledged may be missing on its successor."""
    n = len(pipe)
    for m in masters:
        pipe.execute_command("WAIT", 1, timeout_ms, target_nodes=m)
    try:
        out = list(ClusterPipeline.execute(pipe, raise_on_error=False))
    except _GONE as exc:
        out = [exc] * (n + len(masters))
    if any(isinstance(r, _GONE) for r in out):
        return out[:n], {m.name: "gone" for m in masters}
    return out[:n], {m.name: ("gone" if isinstance(r, Exception) else "acked" if int(r) >= 1 else "timeout")
                     for m, r in zip(masters, out[n:])}      # an error: e.g. that node is a replica now


class _Pipeline(ClusterPipeline):
    """A cluster pipeline that takes PUBLISH (sent after the rest, results kept in place)."""

    def __init__(self, client: RedisCluster, **kw):
        super().__init__(**kw)
        self._client = client
        self._published: list[tuple[int, object, object]] = []

    def publish(self, channel, message, **kwargs):
        """Queue a PUBLISH: sent by `execute` after the other commands."""
        self._published.append((len(self) + len(self._published), channel, message))
        return self

    def execute(self, raise_on_error: bool = True) -> list:
        """Run the queued commands, then the PUBLISHes; results in the order they were queued.
        Commands that met a node gone (a failover) are sent again, alone, once the slot map is
        refreshed (at least once: one in flight when its master died may be applied twice)."""
        published, self._published = self._published, []
        queued = [(c.args, c.options) for c in self._execution_strategy.command_queue]
        try:
            out = list(super().execute(raise_on_error=False)) if queued else []
        except _GONE as exc:          # before any reply: every command is sent again
            out = [exc] * len(queued)

        def again() -> list:
            failed = [i for i, r in enumerate(out) if isinstance(r, _GONE)]
            retry = self._client.pipeline()
            for i in failed:
                retry.execute_command(*queued[i][0], **queued[i][1])
            try:
                results = ClusterPipeline.execute(retry, raise_on_error=False)
            except _GONE as exc:
                results = [exc] * len(failed)
            for i, r in zip(failed, results):
                out[i] = r
            return out

        if any(isinstance(r, _GONE) for r in out):
            _until_failover(again, lambda o: any(isinstance(r, _GONE) for r in o),
                            self._client.nodes_manager.initialize)
        if raise_on_error:
            error = next((r for r in out if isinstance(r, Exception)), None)
            if error is not None:
                raise error
        for pos, channel, message in published:
            out.insert(pos, self._client.publish(channel, message))
        return out


class PitWallCluster(RedisCluster):
    """RedisCluster with the adaptations of the module docstring."""

    def pipeline(self, transaction=None, shard_hint=None):
        """A cluster pipeline; MULTI/EXEC is dropped (keys of several slots cannot share one)."""
        if shard_hint:
            raise ValueError("shard_hint: not supported on a cluster")
        return _Pipeline(self, nodes_manager=self.nodes_manager, commands_parser=self.commands_parser,
                         startup_nodes=self.nodes_manager.startup_nodes, result_callbacks=self.result_callbacks,
                         cluster_response_callbacks=self.cluster_response_callbacks,
                         read_from_replicas=self.read_from_replicas,
                         load_balancing_strategy=self.load_balancing_strategy,
                         reinitialize_steps=self.reinitialize_steps, retry=self.retry, lock=self._lock,
                         transaction=None, event_dispatcher=self._event_dispatcher)

    def execute_command(self, *args, **kwargs):
        """A command, sent again once the slot map is refreshed if its node is gone (a failover)."""
        def attempt():
            try:
                return super(PitWallCluster, self).execute_command(*args, **kwargs)
            except _GONE as exc:
                return exc
        out = _until_failover(attempt, lambda o: isinstance(o, _GONE), self.nodes_manager.initialize)
        if isinstance(out, Exception):
            raise out
        return out

    def xreadgroup(self, groupname, consumername, streams, count=None, block=None, noack=False, **kw):
        """XREADGROUP over streams of any slots: each read alone, polled until `block` ms passed."""
        names = list(streams)
        slots = {self.keyslot(s) for s in names}
        if len(slots) <= 1:
            return super().xreadgroup(groupname, consumername, streams, count=count, block=block, noack=noack, **kw)
        deadline = time.monotonic() + (block or 0) / 1000
        while True:
            out = []
            for s in names:
                got = super().xreadgroup(groupname, consumername, {s: streams[s]}, count=count, noack=noack, **kw)
                out += got or []
            if out or block is None or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.02, max(deadline - time.monotonic(), 0)))


def client_from_url(url: str, **kwargs):
    """The client for `url` (module docstring); bytes responses, as streams carry bytes."""
    u = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    user, password = _credentials(u.netloc)
    tls = u.scheme.startswith("rediss")
    if u.scheme in ("redis+sentinel", "rediss+sentinel"):
        parts = [p for p in u.path.split("/") if p]
        if not parts:
            raise ValueError(f"PITWALL_REDIS_URL={url!r}: a Sentinel URL names its service: "
                             "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
        db = int(parts[1]) if len(parts) > 1 else 0
        sentinel = Sentinel(_nodes(u.netloc, 26379), sentinel_kwargs={"password": query.get("sentinel_password")},
                            socket_timeout=5, retry=_sentinel_retry())
        return sentinel.master_for(parts[0], db=db, username=user, password=password, ssl=tls,
                                   connection_class=_SentinelSSLConnection if tls else _SentinelConnection,
                                   health_check_interval=30, retry=_sentinel_retry(), **kwargs)
    if query.get("cluster", "").lower() in ("1", "true", "yes", "on"):
        nodes = [ClusterNode(h, p) for h, p in _nodes(u.netloc, 6379)]
        return PitWallCluster(startup_nodes=nodes, username=user, password=password, ssl=tls,
                              retry=_retry(), cluster_error_retry_attempts=FAILOVER_RETRY["retries"],
                              health_check_interval=30, **kwargs)
    return redis.Redis.from_url(url, health_check_interval=30, **kwargs)
