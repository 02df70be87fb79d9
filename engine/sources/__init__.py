"""File readers: GR Cup race folders, TUMFTM parameter files, F1 captures, track facts. The core never opens a file."""
