"""The SQL of certmon: forward-only migrations and named queries, shipped in the wheel as certmon.sql."""
