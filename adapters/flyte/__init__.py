"""signoff for Flyte: human approval and input steps in flytekit workflows.

```python
from signoff.adapters.flyte import approve, ask

@workflow
def publish(data: list[float]) -> dict:
    report = create_report(data=data)
    title = ask("Title for the report?", input=str, timeout=timedelta(hours=1), upstream=report)
    ok = approve(report, "Publish it?", assignees=["group:editors"], timeout=timedelta(hours=8))
    return send_report(report=ok, title=title)
```

Flyte 2 (the ``flyte`` SDK) has its own module, :mod:`signoff.adapters.flyte.v2`. The hub side,
:class:`signoff.adapters.flyte.resumer.FlyteResumer`, needs only ``flyteidl`` and ``grpcio``.
flytekit is imported when ``approve`` or ``ask`` is first used, so the resumer and the Flyte 2
module load without it.
"""

from __future__ import annotations

from .. import lazy_exports
from ._common import MissingExtra, require

__all__ = ["MissingExtra", "approve", "ask"]


def _needs_flytekit(name: str) -> None:
    require("flytekit", "flyte")


__getattr__, __dir__ = lazy_exports(__name__, {"approve": "_gates", "ask": "_gates"},
                                    public=__all__, before=_needs_flytekit)
