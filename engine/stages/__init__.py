"""Engine stages (shell): small loops that read a stream, call the pure core and write results.

consumer (the consumer-group machinery every stage shares), ingest (UDP -> telemetry shards),
timing (crossings -> running order), process/ (telemetry shards -> lap records), insights
(crossings -> tyre model and coaching; the only model owner), strategy (crossings -> Monte Carlo
call), driver (profiles and alerts in Redis, called by insights and the process hooks).
"""
