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

from typing import TYPE_CHECKING

from .. import MissingExtra, lazy_exports

__all__ = [
    "ApprovalSensor",
    "BranchSensor",
    "InputSensor",
    "MissingExtra",
    "SignoffCancelled",
    "SignoffExpired",
    "SignoffHook",
    "SignoffNotConfigured",
    "SignoffRejected",
    "SignoffTrigger",
]


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
    "SignoffNotConfigured": "exceptions",
    "SignoffRejected": "exceptions",
    "SignoffHook": "hook",
    "SignoffTrigger": "triggers",
}

if TYPE_CHECKING:
    from .exceptions import SignoffCancelled, SignoffExpired, SignoffRejected
    from .hook import SignoffHook
    from .sensors import ApprovalSensor, BranchSensor, InputSensor
    from .triggers import SignoffTrigger


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, public=__all__)
