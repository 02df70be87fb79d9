"""Strategy Monte Carlo: simulate the rest of a race for the whole field, many races at once (pure:
arrays and frames in, arrays and dicts out; file readers live in engine/sources, the stream loop in
engine/stages/strategy.py).

state.py (RaceState, the field at lap k) and field.py (the board -> RaceState, one builder for the
engine and the page) -> sim.py (Field, Rules, Cautions, Plans, simulate: strategies x races x cars,
random draws in numpy) -> kernel.py (the compiled lap loop; lap_steps.py its steps in TUMFTM's order,
kernel_inputs.py their typed inputs) -> strategies.py (compare a car's strategies, the pit window)
and rejoin.py (where a car rejoins, undercut and overcut threats). call.py is the live call.
tumftm_map.py / tumftm_events.py map TUMFTM's parameters and draw its events; racelaps.py,
trackmodel.py and backtest.py fit GR Cup track models from laps and check the simulator against the
real races; commands.py is `pitwall simulate`.
"""
