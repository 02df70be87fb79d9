"""Engine stages: small loops that read a stream, call the pure core and write results."""
