"""Exceptions the workflow helpers raise: signoff's own, made workflow-safe.

Temporal fails a workflow (rather than retrying its task forever) only for a
:class:`~temporalio.exceptions.ApplicationError`. Each class here is both the matching
:mod:`signoff` exception (``except signoff.Rejected`` works in workflow code) and an
``ApplicationError`` that is ``non_retryable``, whose ``type`` is ``signoff.<Name>`` and whose
one detail is the decision as JSON (what a client sees in ``WorkflowFailureError.cause``).

```
signoff.DecisionError
├── signoff.Rejected  ─┐
├── signoff.Expired   ─┼─ and temporalio.exceptions.ApplicationError
└── signoff.Cancelled ─┘
```
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

import signoff
from signoff import Decision

__all__ = ["Cancelled", "Expired", "Rejected", "error_type"]


def error_type(name: str) -> str:
    """The ``ApplicationError.type`` for a signoff exception name, e.g. ``signoff.Rejected``."""
    return f"signoff.{name}"


class _WorkflowSafe(ApplicationError):
    def __init__(self, message: str, decision: Decision) -> None:
        # ApplicationError's own chain (FailureError, TemporalError, Exception) never reaches
        # DecisionError.__init__, which needs the decision; set it here instead
        ApplicationError.__init__(self, message, decision.model_dump(mode="json"),
                                  type=error_type(type(self).__name__), non_retryable=True)
        self.decision = decision


class Rejected(signoff.Rejected, _WorkflowSafe):
    """The event was rejected (by a person, a policy, or a timeout whose action is reject)."""

    def __init__(self, message: str, decision: Decision) -> None:
        _WorkflowSafe.__init__(self, message, decision)


class Expired(signoff.Expired, _WorkflowSafe):
    """The deadline passed and ``on_timeout`` is ``fail``."""

    def __init__(self, message: str, decision: Decision) -> None:
        _WorkflowSafe.__init__(self, message, decision)


class Cancelled(signoff.Cancelled, _WorkflowSafe):
    """The event was cancelled in the hub before anyone answered."""

    def __init__(self, message: str, decision: Decision) -> None:
        _WorkflowSafe.__init__(self, message, decision)
