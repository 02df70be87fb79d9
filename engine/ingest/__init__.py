"""Telemetry ingest: every source feeds one path — validate, buffer, batch, write to Redis Streams."""
