"""The async twins in an async flow: ``aapprove`` and ``aask`` (signoff + Prefect).

    SIGNOFF_URL=... SIGNOFF_TOKEN=... python examples/prefect_async.py

A nightly backfill asks how many days to backfill, bounded, then asks for an approval of
that size. ``await aask(...)`` pauses the flow run without blocking its event loop.
"""

from __future__ import annotations

import asyncio

from prefect import flow

from signoff import IntInput
from signoff.adapters.prefect import aapprove, aask


@flow(name="backfill")
async def backfill(table: str) -> str:
    days = await aask(f"How many days of {table} should be backfilled?",
                      input=IntInput(min=1, max=30), default=7)
    if await aapprove(f"Backfill {days} days of {table}? It rewrites "
                      f"{days * 24} hourly partitions.", context={"table": table, "days": days}):
        return f"backfilled {days} days of {table}"
    return f"backfill of {table} rejected"


if __name__ == "__main__":
    print(asyncio.run(backfill("sales.orders")), flush=True)
