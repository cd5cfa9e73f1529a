"""signoff for Apache Airflow: deferrable sensors that wait for a person's decision.

```python
from signoff.adapters.airflow import ApprovalSensor, BranchSensor, InputSensor
```

The sensors (:mod:`.sensors`) create the event on the hub and defer to
:class:`~signoff.adapters.airflow.triggers.SignoffTrigger`, which the triggerer imports by its
classpath; the hub is found through the ``signoff`` connection (:mod:`.hook`) or
``SIGNOFF_URL``/``SIGNOFF_TOKEN``. Names load lazily, so the triggerer, importing the trigger,
does not load the sensors. Needs ``pip install 'signoff[airflow]'`` (Airflow 3).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ApprovalSensor",
    "BranchSensor",
    "InputSensor",
    "MissingExtra",
    "SignoffCancelled",
    "SignoffExpired",
    "SignoffHook",
    "SignoffRejected",
    "SignoffTrigger",
]


class MissingExtra(ImportError):
    """Airflow 3 is not installed: ``pip install 'signoff[airflow]'``."""


try:
    import airflow.sdk  # noqa: F401  (Airflow 3's task SDK; Airflow 2 has none)
except ImportError as exc:
    if (exc.name or "airflow").split(".")[0] != "airflow":
        raise
    raise MissingExtra("signoff.adapters.airflow needs Apache Airflow 3: "
                       "pip install 'signoff[airflow]'") from exc

_WHERE = {
    "ApprovalSensor": "sensors",
    "BranchSensor": "sensors",
    "InputSensor": "sensors",
    "SignoffCancelled": "exceptions",
    "SignoffExpired": "exceptions",
    "SignoffRejected": "exceptions",
    "SignoffHook": "hook",
    "SignoffTrigger": "triggers",
}

if TYPE_CHECKING:
    from .exceptions import SignoffCancelled, SignoffExpired, SignoffRejected
    from .hook import SignoffHook
    from .sensors import ApprovalSensor, BranchSensor, InputSensor
    from .triggers import SignoffTrigger


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
