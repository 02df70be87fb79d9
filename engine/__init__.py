"""PitWall engine: the background process that ingests telemetry and computes insights."""

__version__ = "0.1.0"
