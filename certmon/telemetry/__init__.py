"""Prometheus: metric conventions, the per-process registry, and the database-derived snapshot with its parts."""
