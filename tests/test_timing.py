"""Live timing core: laps applied once, running order, gaps, laps down, sector colours."""

from engine.timing import apply_lap, format_gap, format_laptime, running_order


def crossing(car, lap, elapsed, lap_time, sectors=(30.0, 40.0, 30.0), **kw):
    return {"car": car, "lap": lap, "elapsed_s": elapsed, "lap_time_s": lap_time,
            "s1_s": sectors[0], "s2_s": sectors[1], "s3_s": sectors[2], "flag": "GF", **kw}


def test_a_lap_is_applied_once_and_best_lap_tracks_green_laps():
    s = apply_lap(None, crossing("7", 1, 100.0, 100.0))
    s = apply_lap(s, crossing("7", 2, 199.0, 99.0))
    assert s["laps"] == 2 and s["best_lap_s"] == 99.0 and s["last_lap_s"] == 99.0
    assert apply_lap(s, crossing("7", 2, 199.0, 99.0)) is None        # redelivery: no change
    assert apply_lap(s, crossing("7", 1, 100.0, 100.0)) is None       # late duplicate: no change
    fcy = apply_lap(s, crossing("7", 3, 320.0, 80.0, flag="FCY"))
    assert fcy["best_lap_s"] == 99.0, "a lap under caution never counts as best"


def test_pit_lap_resets_tyre_age_and_counts_the_stop():
    s = None
    for lap in range(1, 6):
        s = apply_lap(s, crossing("3", lap, lap * 100.0, 100.0, in_pit=(lap == 3)))
    assert s["pits"] == 1 and s["tyre_age_laps"] == 2


def run_car(car, laps, lap_time, offset=0.0):
    state = None
    for lap in range(1, laps + 1):
        state = apply_lap(state, crossing(car, lap, offset + lap * lap_time, lap_time))
    return state


def test_running_order_gaps_intervals_and_laps_down():
    cars = [run_car("A", 5, 100.0), run_car("B", 5, 100.0, offset=2.5), run_car("C", 4, 130.0)]
    cars[2]["best_lap_s"] = 97.0
    board = running_order(cars)
    assert [c["car"] for c in board] == ["A", "B", "C"]
    assert board[1]["gap_s"] == 2.5 and board[1]["interval_s"] == 2.5
    # C crossed for the 4th time at 520 s, after A had completed its 5th lap at 500 s
    assert board[2]["gap_laps"] == 1 and format_gap(board[2]["gap_s"], board[2]["gap_laps"]) == "+1 LAP"
    assert board[2]["fastest_lap"] and not board[0]["fastest_lap"]


def test_sector_marks_overall_personal_and_slower():
    a = apply_lap(None, crossing("A", 1, 100.0, 100.0, sectors=(30.0, 40.0, 30.0)))
    a = apply_lap(a, crossing("A", 2, 200.5, 100.5, sectors=(30.5, 39.5, 30.5)))
    b = apply_lap(None, crossing("B", 1, 101.0, 101.0, sectors=(29.0, 41.0, 31.0)))
    marks = {c["car"]: c["sector_marks"] for c in running_order([a, b])}
    assert marks["A"] == [None, "overall", None]
    assert marks["B"] == ["overall", "personal", "personal"]


def test_formats():
    assert format_laptime(98.366) == "1:38.366"
    assert format_laptime(None) == ""
    assert format_gap(0.4, 0) == "+0.400" and format_gap(None, 2) == "+2 LAPS"


def test_a_car_that_has_not_reached_the_line_yet_is_not_a_lap_down():
    # The leader has just started lap 6; B is 2.5 s behind on the road and crosses in a moment.
    a = b = None
    for lap in range(1, 6):
        a = apply_lap(a, crossing("A", lap, lap * 100.0, 100.0))
        b = apply_lap(b, crossing("B", lap, lap * 100.0 + 2.5, 100.0))
    a = apply_lap(a, crossing("A", 6, 600.0, 100.0))
    board = running_order([a, b])
    assert board[1]["gap_laps"] == 0 and board[1]["gap_s"] == 2.5, "gap at the line, same lap"


def test_a_car_lapped_before_it_crossed_is_a_lap_down():
    a = b = None
    for lap in range(1, 5):
        a = apply_lap(a, crossing("A", lap, lap * 90.0, 90.0))
    for lap in range(1, 4):
        b = apply_lap(b, crossing("B", lap, lap * 110.0, 110.0))   # B crossed at 330 s, A had done 3 laps at 270
    board = running_order([a, b])
    assert board[1]["gap_laps"] == 0 and board[1]["gap_s"] == 60.0
    b = apply_lap(b, crossing("B", 4, 440.0, 110.0))   # A completed lap 4 at 360 s and lap 5 at 450? not yet
    a = apply_lap(a, crossing("A", 5, 450.0, 90.0))
    a = apply_lap(a, crossing("A", 6, 540.0, 90.0))
    b = apply_lap(b, crossing("B", 5, 550.0, 110.0))    # when B crossed (550 s) A had completed 6 laps
    board = running_order([a, b])
    assert board[1]["gap_laps"] == 1 and format_gap(board[1]["gap_s"], board[1]["gap_laps"]) == "+1 LAP"


def test_a_car_that_stopped_after_its_last_crossing_is_shown_lapped_not_with_its_old_gap():
    # Barber race 1's #88: 27 s behind the leader at its 12th crossing, then a 5:41 lap in the pits;
    # once the leader has crossed twice more the tower must not keep "+27.235" below P21's +58 s.
    a = b = c = None
    for lap in range(1, 13):
        a = apply_lap(a, crossing("A", lap, lap * 98.0, 98.0))
        b = apply_lap(b, crossing("B", lap, lap * 98.0 + 50.0, 98.0))
        c = apply_lap(c, crossing("C", lap, lap * 98.0 + 27.0, 98.0))
    a = apply_lap(a, crossing("A", 13, 13 * 98.0, 98.0))
    b = apply_lap(b, crossing("B", 13, 13 * 98.0 + 50.0, 98.0))
    board = running_order([a, b, c])
    assert board[2]["car"] == "C" and board[2]["gap_s"] == 27.0, "leader one lap on: the gap at the line"
    a = apply_lap(a, crossing("A", 14, 14 * 98.0, 98.0))
    board = running_order([a, b, c])
    assert [r["car"] for r in board] == ["A", "B", "C"]
    assert format_gap(board[2]["gap_s"], board[2]["gap_laps"]) == "+1 LAP"
    assert board[1]["gap_s"] == 50.0, "B (one crossing behind the leader) keeps its gap"
