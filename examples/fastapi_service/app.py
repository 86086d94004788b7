"""A small money-transfer service: FastAPI, SQLAlchemy's asyncio engine and asyncpg,
kept alive through terminated sessions and server restarts by sessionward.

- ``harden()`` replaces a pooled connection whose session the server ended before a
  request sees it, and sets a statement timeout and TCP keepalives on each connection.
- ``@transaction`` on each ``async def`` unit commits, rolls back and closes, and reruns
  the whole unit, with backoff, when its session ended under it (a terminated backend,
  a restart) or the server failed it whole (deadlock, serialization failure).
- A transfer carries the client's id and is written once per id, so rerunning it after
  a COMMIT whose outcome is unknown is harmless: ``idempotent=True``.
- What still fails after every attempt (the server stayed down) is a 503 with
  ``Retry-After``, never a 500.

Run it: ``DATABASE_URL=postgresql+asyncpg://user@host/db uvicorn app:app`` (see README.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from sessionward import Timeouts
from sessionward.errors import SessionEnded
from sessionward.sqlalchemy import Backoff, harden, transaction

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
#: How the service's sessions are named on the server (``pg_stat_activity``).
APPLICATION = "sw-fastapi-example"
#: Attempts of one unit: with the backoff below, about 6 s, enough to outlast a fast restart.
RETRIES = 10
BACKOFF = Backoff(initial_seconds=0.02, max_seconds=1.0)
ACCOUNTS = 100
OPENING_BALANCE = 1000


class TransferIn(BaseModel):
    id: int = Field(gt=0, description="the client's own id: a transfer is applied once per id")
    source: int
    target: int
    amount: int = Field(gt=0)


async def create_schema(session: AsyncSession) -> None:
    await session.execute(
        text(
            "CREATE TABLE IF NOT EXISTS accounts "
            "(id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))"
        )
    )
    await session.execute(
        text(
            "CREATE TABLE IF NOT EXISTS transfers (id bigint PRIMARY KEY, source int NOT NULL, "
            "target int NOT NULL, amount int NOT NULL)"
        )
    )
    await session.execute(
        text(
            "INSERT INTO accounts (id, balance) "
            "SELECT n, CAST(:balance AS bigint) FROM generate_series(1, CAST(:n AS int)) AS n "
            "ON CONFLICT (id) DO NOTHING"
        ),
        {"balance": OPENING_BALANCE, "n": ACCOUNTS},
    )


async def transfer(session: AsyncSession, body: TransferIn) -> bool:
    """Move the money, unless this transfer id was applied already; whether it was new."""
    if body.source == body.target:
        raise HTTPException(422, "source and target are the same account")
    recorded = await session.scalar(
        text(
            "INSERT INTO transfers (id, source, target, amount) "
            "VALUES (:id, :source, :target, :amount) ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
        body.model_dump(),
    )
    if recorded is None:
        return False  # applied before: by an earlier request, or an attempt whose COMMIT was cut
    # Rows locked in id order, so concurrent transfers rarely deadlock (one is rerun if so).
    for account, delta in sorted(((body.source, -body.amount), (body.target, body.amount))):
        balance = await session.scalar(
            text("UPDATE accounts SET balance = balance + :delta WHERE id = :id RETURNING balance"),
            {"delta": delta, "id": account},
        )
        if balance is None:
            raise HTTPException(404, f"no account {account}")
        if balance < 0:
            raise HTTPException(409, f"account {account} has not enough money")
    return True


async def balance(session: AsyncSession, account: int) -> int:
    found = await session.scalar(
        text("SELECT balance FROM accounts WHERE id = :id"), {"id": account}
    )
    if found is None:
        raise HTTPException(404, f"no account {account}")
    return int(found)


async def total(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT sum(balance) FROM accounts")) or 0)


def create_app(database_url: str | None = None) -> FastAPI:
    """The service on ``database_url`` (default: ``DATABASE_URL``, else a local server)."""
    url = database_url or os.environ.get("DATABASE_URL", DEFAULT_URL)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = harden(
            create_async_engine(
                url,
                pool_size=10,
                connect_args={"server_settings": {"application_name": APPLICATION}},
            ),
            timeouts=Timeouts(statement_seconds=10, idle_in_transaction_seconds=30),
        )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Each unit is rerun whole when that is safe; all three are safe to run twice.
        unit = transaction(sessions, retries=RETRIES, backoff=BACKOFF, idempotent=True)
        app.state.transfer = unit(transfer)
        app.state.balance = unit(balance)
        app.state.total = unit(total)
        await unit(create_schema)()
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="sessionward transfer service", lifespan=lifespan)

    @app.exception_handler(SessionEnded)
    async def database_unavailable(request: Request, error: SessionEnded) -> JSONResponse:
        # Every attempt failed on a session that ended: the server is down or unreachable.
        return JSONResponse(
            {"detail": f"database unavailable: {error}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.post("/transfers")
    async def post_transfer(body: TransferIn, request: Request) -> dict[str, object]:
        new = await request.app.state.transfer(body)
        return {"id": body.id, "new": new}

    @app.get("/accounts/{account}")
    async def get_account(account: int, request: Request) -> dict[str, int]:
        return {"id": account, "balance": await request.app.state.balance(account)}

    @app.get("/total")
    async def get_total(request: Request) -> dict[str, int]:
        return {"total": await request.app.state.total()}

    return app


app = create_app()

if __name__ == "__main__":
    import uvicorn  # pip install uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
