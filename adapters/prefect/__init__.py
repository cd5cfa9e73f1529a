"""Human approval and input steps in Prefect flows, answered in the signoff hub.

```python
from prefect import flow
from signoff.adapters.prefect import approve, ask

@flow
def release(model: str):
    if approve(f"Ship {model}?", context={"auc": 0.91}, assignees=["group:ml-leads"],
               timeout=3600):
        deploy(model)
    title = ask("Title for the report?", input=str)
```

``approve``/``ask`` block a sync flow or task; ``aapprove``/``aask`` (Prefect's ``a``
prefix, as in ``apause_flow_run``) are their async twins. The hub-side resumer is
:class:`signoff.adapters.prefect.resumer.PrefectResumer`; it needs only httpx, so this
package loads Prefect lazily: the step functions need the ``prefect`` extra, the resumer
does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy_exports
from ._common import CHANNEL, MissingExtra, NotInFlowRun

if TYPE_CHECKING:
    from ._api import aapprove, aask, approve, ask
    from ._plan import DEFAULT_PAUSE_TIMEOUT, DEFAULT_POLL_INTERVAL, TIMEOUT_MARGIN

__all__ = [
    "CHANNEL",
    "DEFAULT_PAUSE_TIMEOUT",
    "DEFAULT_POLL_INTERVAL",
    "TIMEOUT_MARGIN",
    "MissingExtra",
    "NotInFlowRun",
    "aapprove",
    "aask",
    "approve",
    "ask",
]

_LAZY = {
    "aapprove": "_api", "aask": "_api", "approve": "_api", "ask": "_api",
    "DEFAULT_PAUSE_TIMEOUT": "_plan", "DEFAULT_POLL_INTERVAL": "_plan",
    "TIMEOUT_MARGIN": "_plan",
}


def _needs_prefect(name: str) -> None:
    try:
        import prefect  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"signoff.adapters.prefect.{name} needs Prefect: "
                           f"pip install 'signoff[prefect]'") from exc


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, public=__all__, before=_needs_prefect)
