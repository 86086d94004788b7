"""asyncpg's own pool: liveness, recycle and leak tracking through its ``init``, ``setup``
and ``reset`` hooks (see ``sessionward.asyncpg``)."""
