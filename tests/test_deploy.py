"""docker-compose.yml and deploy/k8s/ cannot be run here (no Docker engine, no cluster): this reads
them and checks each command, port, variable, health path and Redis option against the code — the
`pitwall` parser takes every command, every PITWALL_* variable is one the code reads, the ports are
the settings' defaults and the image's EXPOSE, the health paths answer 200 from the real server, and
the real redis-server starts with the Redis options given."""

import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from engine.cli import build_parser
from engine.redisserver import connect, free_port
from engine.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
K8S = sorted((REPO_ROOT / "deploy" / "k8s").glob("*.yaml"))
IMAGE = "pitwall:latest"


def _k8s_docs() -> list[dict]:
    return [d for p in K8S for d in yaml.safe_load_all(p.read_text()) if d]


def _containers() -> list[dict]:
    """Every container of every Deployment / StatefulSet."""
    return [c for d in _k8s_docs() if d["kind"] in ("Deployment", "StatefulSet")
            for c in d["spec"]["template"]["spec"]["containers"]]


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _pitwall_commands() -> list[list[str]]:
    """The argv after the image's entrypoint (`pitwall`) of every PitWall container, and every exec
    probe that runs `pitwall`."""
    out = [list(s["command"]) for s in _compose()["services"].values() if s.get("image") == IMAGE]
    for c in _containers():
        if c["image"] == IMAGE:
            out.append(list(c["args"]))
        for probe in ("readinessProbe", "livenessProbe"):
            cmd = c.get(probe, {}).get("exec", {}).get("command")
            if cmd and cmd[0] == "pitwall":
                out.append(cmd[1:])
    return out


def test_the_image_runs_pitwall_and_exposes_the_default_ports():
    docker = (REPO_ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tini", "--", "pitwall"]' in docker
    expose = re.search(r"^EXPOSE (.+)$", docker, re.M).group(1).split()
    s = Settings.from_env({})
    assert f"{s.http_port}" in expose and f"{s.udp_port}/udp" in expose


def test_every_command_is_one_the_pitwall_parser_takes():
    cmds = _pitwall_commands()
    assert len(cmds) >= 7, cmds
    parser = build_parser()
    for argv in cmds:
        args = parser.parse_args(argv)      # SystemExit (and a message naming the option) if not
        assert args.command in ("engine", "web"), argv
    roles = {r for argv in cmds if argv[0] == "engine" for r in (parser.parse_args(argv).role or [])}
    from engine.commands.engine import ROLES
    assert roles == set(ROLES), "a role is run nowhere, or one that does not exist"


def _variables() -> dict[str, str]:
    out: dict[str, str] = {}
    compose = _compose()
    for s in compose["services"].values():
        out.update({k: str(v) for k, v in (s.get("environment") or {}).items()})
    for d in _k8s_docs():
        if d["kind"] in ("ConfigMap", "Secret"):
            out.update({k: str(v) for k, v in (d.get("data") or d.get("stringData") or {}).items()})
    return out


def test_every_variable_is_one_the_code_reads_and_parses():
    env = _variables()
    code = "\n".join(p.read_text() for folder in ("engine", "app") for p in (REPO_ROOT / folder).rglob("*.py"))
    for name in env:
        assert re.search(rf"[\"']{name}[\"']", code), f"{name} is read nowhere in engine/ or app/"
    assert "PITWALL_SECRET" in env and "PITWALL_REDIS_URL" in env
    assert "${PITWALL_SECRET:?" in COMPOSE.read_text(), "compose takes the secret from the environment"
    concrete = {k: v for k, v in env.items() if not v.startswith("${")}
    s = Settings.from_env(concrete)          # every value parses as the settings read it
    assert s.http_port == 8050 and s.udp_port == 20777


def test_ports_agree_between_services_and_settings():
    compose = _compose()["services"]
    assert compose["web"]["ports"] == ["8050:8050"]
    assert "20777:20777/udp" in compose["engine-main"]["ports"]
    web = next(c for c in _containers() if c["name"] == "web")
    assert web["ports"][0]["containerPort"] == 8050
    assert web["readinessProbe"]["httpGet"]["port"] == 8050
    redis_port = next(c for c in _containers() if c["name"] == "redis")["ports"][0]["containerPort"]
    for url in (v for k, v in _variables().items() if k == "PITWALL_REDIS_URL"):
        assert url.endswith(f":{redis_port}/0"), url


def _health_paths() -> set[str]:
    paths = set()
    for c in _containers():
        for probe in ("readinessProbe", "livenessProbe"):
            if "httpGet" in c.get(probe, {}):
                paths.add(c[probe]["httpGet"]["path"])
    for s in _compose()["services"].values():
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        paths |= set(re.findall(r"http://[^/]+(/[^'\" ]*)", test))
    return paths


def test_health_paths_answer_200_from_the_real_server(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PITWALL_REDIS_URL", redis_url)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PITWALL_AUTH", "on")          # as deployed: the probes need no login
    monkeypatch.setenv("PITWALL_SECRET", "s" * 40)
    from app.server import create_server

    paths = _health_paths()
    assert paths == {"/api/health"}, paths
    client = create_server().test_client()
    for path in paths:
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_redis_starts_with_the_options_given_and_keeps_an_aof(tmp_path, where):
    if where == "compose":
        cmd = _compose()["services"]["redis"]["command"]
    else:
        cmd = next(c for c in _containers() if c["name"] == "redis")["command"]
    port = free_port()
    argv = [a if a != "/data" else str(tmp_path) for a in cmd] + ["--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = connect(f"redis://127.0.0.1:{port}/0")
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, f"redis-server refused {cmd}"
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.set("k", "v")
        time.sleep(1.2)
        assert any(Path(tmp_path).rglob("*.aof")), "no append-only file written"
    finally:
        proc.terminate()
        proc.wait(10)
