"""`pitwall bench soak` for 3 minutes (two whole races at 20x, the second a `replay --fresh` against
the running engine, the dashboard open in headless Chromium): nothing lost, the second race's lap
records equal the first's, no PitWall process grows by 50 MB or more."""

import pytest

from benchmarks import soak


@pytest.mark.slow
@pytest.mark.soak              # loss, equality and memory limits, no latency bound: beside the bulk (make test)
@pytest.mark.browser
def test_a_three_minute_soak_loses_nothing_and_does_not_grow():
    out = soak.main(["--minutes", "3"])
    assert out["rounds"] >= 2, out
    assert out["lost_points"] == 0, out["ingest"]
    assert out["lap_records_equal"] and out["lap_records"] >= 20, out
    pitwall = {k: v for k, v in out["rss_growth_mb"].items() if k not in ("max", "chromium")}
    assert set(pitwall) >= {"engine", "engine-worker-0", "engine-worker-1", "web", "redis-server"}
    assert max(pitwall.values()) < 50, out["rss_mb"]
    assert out["redis_used_memory_growth_mb"] < 50, out["redis_used_memory_mb"]
