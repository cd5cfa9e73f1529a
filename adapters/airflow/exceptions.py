"""How a decision that is not an answer fails an Airflow task.

Each is both signoff's :class:`signoff.DecisionError` (with the ``decision``) and Airflow's
``AirflowFailException``: the task fails at once, without retries, because a retry would find
the same decided event and fail the same way.

```
AirflowFailException + signoff.DecisionError
├── SignoffRejected    rejected (by a person, a policy, or a timeout with on_timeout="reject")
├── SignoffExpired     the deadline passed and on_timeout is "fail"
└── SignoffCancelled   the event was cancelled
AirflowFailException + signoff.HubNotConfigured
└── SignoffNotConfigured   no signoff connection and no SIGNOFF_URL: says how to create it
```
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from signoff import Cancelled, Expired, HubNotConfigured, Rejected

__all__ = ["SignoffCancelled", "SignoffExpired", "SignoffNotConfigured", "SignoffRejected"]


class SignoffRejected(Rejected, AirflowFailException):
    """The event was rejected; the task fails (``on_reject="fail"``)."""


class SignoffExpired(Expired, AirflowFailException):
    """Nobody answered before the deadline and the event's ``on_timeout`` is ``fail``."""


class SignoffCancelled(Cancelled, AirflowFailException):
    """The event was cancelled in the hub before anyone answered."""


class SignoffNotConfigured(HubNotConfigured, AirflowFailException):
    """No hub is configured for the task: its connection is not defined (nor ``SIGNOFF_URL``).

    Not Airflow's ``AirflowNotFoundException``, which the task would retry: a retry finds the
    same missing connection, so the task fails at once with a message saying how to create it.
    """
