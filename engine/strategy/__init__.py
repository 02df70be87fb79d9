"""Strategy Monte Carlo: simulate the rest of a race for the whole field, many races at once.

state.py (RaceState, the field at lap k) -> sim.py (Field, Rules, Cautions, Plans, simulate:
arrays of strategies x races x cars, the only loop is over laps) -> strategies.py (compare a
car's strategies, PitWindow and its radio sentence) and rejoin.py (where a car rejoins, undercut
and overcut threats). tumftm.py imports TUMFTM parameter files; grcup.py fits cautions and pit
loss from the GR Cup laps and backtests; live.py is what the engine calls.
"""
