"""The async twins in an async flow: ``aapprove`` and ``aask`` (signoff + Prefect).

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,prefect]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ prefect server start --port 4200 &
    $ export PREFECT_API_URL=http://127.0.0.1:4200/api
    $ SIGNOFF_RESUMERS__PREFECT__API_URL=$PREFECT_API_URL signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user backfill-flow --role workflow --db hub.db)
    $ python examples/prefect_async.py

The hub prints a one-time login link on its first start: open it to answer in the inbox. The
flow run's log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``), and the
inbox links back to the run in Prefect's UI (http://127.0.0.1:4200).

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
