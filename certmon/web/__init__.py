"""The aiohttp service: app factory, middlewares, typed app keys, the /api/v1 operations and /metrics."""
