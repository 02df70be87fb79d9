"""The session archive: Parquet tables per session (store), import of recorded races (importer)."""
