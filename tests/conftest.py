"""Shared fixtures: a real redis-server per test session on a free port, settings, browser setup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.redisserver import RedisServer, connect
from engine.settings import REPO_ROOT, Settings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PITWALL_AUTH"] = "off"      # open access unless a test is marked `auth` (see _access_mode)
DATA = REPO_ROOT / "data"
SCREENSHOTS = REPO_ROOT / "tests" / "screenshots"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server owned by the test session (no persistence), stopped afterwards."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The server's URL, with the database flushed before each test."""
    client = connect(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url):
    """A redis client on a clean database."""
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url, tmp_path):
    """Settings that point at the test Redis and a temporary data directory."""
    return Settings.from_env({}).with_(redis_url=redis_url, data_dir=tmp_path / "var")


@pytest.fixture(scope="session")
def grcup() -> Path:
    return DATA / "grcup"


@pytest.fixture(scope="session")
def held_out_models(tmp_path_factory) -> Path:
    """The tyre model trained by `pitwall train` on every race but Barber race 1 (the race the tyre
    and insights tests judge), trained once per session; tests only read it."""
    from engine.cli import main
    from engine.sources.models import read_tyre_model

    import fcntl

    # pytest-xdist: the workers' temp dirs share a parent; the first worker trains, the other waits for it
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    out = shared / "held-out-models"
    with open(shared / "held-out-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "held-out-models.done").exists():
            assert main(["train", "--data", str(DATA / "grcup"), "--out", str(out),
                         "--hold-out", "barber-r1", "--no-card"]) == 0
            (shared / "held-out-models.done").touch()
    assert "barber-r1" not in read_tyre_model(out).meta["trained_on"]
    return out


def pytest_setup_options():
    """dash[testing]: Debian's headless Chromium, whatever the machine's defaults."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"):
        options.add_argument(arg)
    return options


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where browser tests save what the page showed (git-ignored) for a reviewer to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def _wait_for(predicate, timeout: float = 30.0, every: float = 0.05) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def _page_module(path: str):
    """The page module Dash registered for `path` when create_server() built the app: importing
    `pages.x` again under that name registers the page twice, and every later app in this process
    then refuses to route ("duplicate paths")."""
    import sys

    import dash

    for p in dash.page_registry.values():
        if p["path"] == path and p["module"] in sys.modules:
            return sys.modules[p["module"]]
    raise LookupError(f"no page registered at {path}: call create_server() first")


@pytest.fixture(scope="session")
def page_module():
    """page_module(path) -> the page module Dash registered (a fixture: `from conftest import` would
    find tests/faults/conftest.py when the whole suite runs)."""
    return _page_module


@pytest.fixture(scope="session")
def wait_for():
    """wait_for(predicate, timeout=30) -> bool: poll until a live system reaches a state."""
    return _wait_for


# --- access (issue 16): tests run with auth off unless marked `auth` ----------------------------
AUTH_SECRET = "test-secret-" + "x" * 60     # 72 bytes: long enough for HS512 too (the forged tokens)


def pytest_configure(config):
    config.addinivalue_line("markers", "auth: runs with PITWALL_AUTH on (users, tokens, roles)")


# --- side by side (pytest-xdist, `make test`): the longest files first ------------------------------
# A file stays on one worker (--dist loadfile); xdist hands them out in collection order, so the files
# that took longest in the clean-clone CI runs of 2026-12-04/05 (seconds of setup + calls + teardown,
# most first) start first and the short ones fill in at the end instead of one long file running alone.
LONGEST_FIRST = (
    "test_browser_follow.py", "test_browser_pages.py", "test_process_stage.py", "test_insights_late.py",
    "test_any_track.py", "test_browser_caution_map.py", "test_fuzz_parsers.py", "test_fault_stage_kill.py",
    "test_fault_model.py", "test_insights_incremental.py", "test_report.py", "test_strategy_early.py",
    "test_insights.py", "test_race_browser.py", "test_fault_disk_full.py", "test_replay_sources.py",
    "test_f1_sessions.py", "test_driver.py", "test_access_browser.py", "test_driver_role.py",
)


def pytest_collection_modifyitems(config, items):
    """Under xdist (a worker collects), order files longest first; tests within a file keep their order."""
    if not hasattr(config, "workerinput"):
        return
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _access_mode(request, monkeypatch):
    """Tests of the product's behaviour run with open access (PITWALL_AUTH=off, set above for the
    whole session, servers on loopback); tests marked `auth` run with auth on and a known
    PITWALL_SECRET (they create users and tokens)."""
    if request.node.get_closest_marker("auth"):
        monkeypatch.setenv("PITWALL_AUTH", "on")
        monkeypatch.setenv("PITWALL_SECRET", AUTH_SECRET)


@pytest.fixture
def make_token():
    """make_token(role, scopes=None, ttl_s=3600) -> a token signed with the tests' secret."""
    from app import tokens

    return lambda role, scopes=None, ttl_s=3600, **kw: tokens.create(AUTH_SECRET, role, scopes, ttl_s, **kw)


def spawn_auth_web(settings: Settings, log_path: Path):
    """`pitwall web` (gunicorn) with auth on and the tests' secret, for a module's server."""
    from app import commands

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PITWALL_AUTH", "on")
        mp.setenv("PITWALL_SECRET", AUTH_SECRET)
        return commands.spawn(settings, log_path=log_path)
