"""PostgreSQL: the pool, migrations, named queries, and one module per table family; functions take the connection."""
