"""The F1 game as the official timing: pure modules from decoded packets to PitWall's records.

layouts (packet dtypes PitWall reads beyond telemetry), names (the protocol's codes in words),
lapdata (crossings from Lap Data), state (one session's live state, fed packet by packet),
board (the tower's rows in the game's running order). No I/O: engine/ingest/f1feed.py is the shell.
"""
