"""Laps, sectors and feature vectors from the telemetry stream (the engine's "process" stage).

detect.py   lap and sector boundaries (pure numpy)
features.py THE feature spec (name, unit, formula) and its computation per lap and sector
records.py  the versioned LapRecord contract
state.py    per-car state: the open lap's samples, tyre age, checkpoint encoding
"""
