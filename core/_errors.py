"""The exceptions signoff raises, one tree under :class:`SignoffError`.

```
SignoffError
├── HubError                   an answer from the hub; ``status`` is its HTTP status
│   ├── InvalidInput           422  a value or field is not what was expected (``field``, ``expected``, ``got``)
│   ├── Unauthenticated        401  no token, or a token the hub does not know
│   ├── Forbidden              403  the caller may not do this to this event
│   ├── NotFound               404  no such event
│   ├── AlreadyDecided         409  the event is decided or cancelled; nothing was changed
│   ├── AlreadyAnswered        409  this responder already answered (quorum events)
│   ├── Conflict               409  the thing is not in a state that allows this (a delivery not failed)
│   ├── TargetTaken            409  the run the event would resume belongs to another identity's events
│   ├── DigestChanged          409  an answer given against a digest the event no longer shows (``changed``)
│   ├── KeyReused              409  an idempotency key re-sent with another payload (``changed``)
│   ├── PayloadTooLarge        413
│   ├── RateLimited            429  a per-token limit was reached (``limit``, ``value``, ``retry_after``)
│   └── StoreUnavailable       503  the database cannot be reached just now (``Retry-After``)
├── HubUnavailable             the hub could not be reached (after the client's retries)
├── StoreError                 a database that is missing or is not a signoff database
├── HubNotConfigured           no hub URL was given; the message names the setting to fix
├── WaitTimeout                ``Client.wait`` gave up before a decision came
├── DecisionUnverified         a decision whose signature or digest does not verify (``signoff._evidence``)
└── DecisionError              a decision the workflow cannot continue with as a value
    ├── Rejected               the event was rejected (by a person, a policy or a timeout)
    ├── Expired                the deadline passed and ``on_timeout`` is ``fail``
    └── Cancelled              the event was cancelled
```

The HTTP status lives on the class, so the hub renders every error the same way (JSON for
the API, a page for the browser) and the client turns the hub's JSON back into the same class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._model import Decision

__all__ = [
    "AlreadyAnswered",
    "AlreadyDecided",
    "Cancelled",
    "Conflict",
    "DecisionError",
    "DigestChanged",
    "Expired",
    "Forbidden",
    "HubError",
    "HubNotConfigured",
    "HubUnavailable",
    "InvalidInput",
    "KeyReused",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Rejected",
    "SignoffError",
    "StoreError",
    "StoreUnavailable",
    "TargetTaken",
    "Unauthenticated",
    "WaitTimeout",
]


class SignoffError(Exception):
    """The root of every error signoff raises."""


class HubError(SignoffError):
    """An error answered by the hub (or raised inside it), with its HTTP status."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the hub answers with."""
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body (none by default)."""
        return {}


class InvalidInput(HubError):
    """A value or field is not what was expected. Nothing was stored."""

    status = 422
    code = "invalid_input"

    def __init__(self, field: str, expected: str, got: Any, message: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(message or f"{field}: expected {expected}, got {_show(got)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON body, naming the field, what was expected and what came."""
        body = super().to_dict()
        body["error"].update(field=self.field, expected=self.expected, got=_jsonable(self.got))
        return body


class Unauthenticated(HubError):
    """No bearer token, or one the hub does not know."""

    status = 401
    code = "unauthenticated"


class Forbidden(HubError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(HubError):
    """No event with that id."""

    status = 404
    code = "not_found"


class AlreadyDecided(HubError):
    """The event already has its decision (or was cancelled); nothing was changed."""

    status = 409
    code = "already_decided"


class AlreadyAnswered(HubError):
    """The responder already answered this event; a quorum counts each person once."""

    status = 409
    code = "already_answered"


class Conflict(HubError):
    """The thing is not in a state that allows this (e.g. retrying a delivery that has not
    failed); nothing was changed.
    """

    status = 409
    code = "conflict"


class TargetTaken(HubError):
    """The run (or step) this event's decision would be pushed into is already named by an
    event of another identity: one workflow cannot aim its decisions at another's run. Nothing
    was stored; the message names no other identity or event.
    """

    status = 409
    code = "target_taken"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (
            "source.params: the run this event's decision would be delivered to is already "
            "named by events of another identity; a workflow's decisions only go to its own "
            "runs, so nothing was stored"))


class _Changed(HubError):
    """A 409 that names the shown fields that differ (``changed``) and both digests."""

    def __init__(self, message: str, *, changed: list[str] | None = None,
                 expected: str | None = None, got: str | None = None) -> None:
        self.changed = changed or []
        self.expected = expected
        self.got = got
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body, with the changed fields and the two digests."""
        body = super().to_dict()
        body["error"].update(field="digest", changed=self.changed, expected=self.expected,
                             got=self.got)
        return body


class DigestChanged(_Changed):
    """The answer was given against a digest the event does not show now; nothing was written.
    Reload the event and answer again.
    """

    status = 409
    code = "digest_changed"


class KeyReused(_Changed):
    """An idempotency key came again with a different payload: the existing event (and its
    decision) is not returned for it. Use a new key for a new question.
    """

    status = 409
    code = "key_reused"


class PayloadTooLarge(HubError):
    """The request body is larger than the hub accepts."""

    status = 413
    code = "payload_too_large"


class RateLimited(HubError):
    """A per-token limit was reached; nothing was done. Try again after ``retry_after`` seconds.

    ``limit`` names the setting that was reached (e.g. ``create_rate``) and ``value`` is its
    value, so an operator knows which knob to turn.
    """

    status = 429
    code = "rate_limited"

    def __init__(self, limit: str, value: float, retry_after: int,
                 message: str | None = None) -> None:
        self.limit = limit
        self.value = value
        self.retry_after = max(1, int(retry_after))
        super().__init__(message or f"{limit} ({value:g}) reached; retry after "
                                    f"{self.retry_after} s")

    def to_dict(self) -> dict[str, Any]:
        """The JSON body, naming the limit, its value and when to retry."""
        body = super().to_dict()
        body["error"].update(limit=self.limit, value=self.value, retry_after=self.retry_after)
        return body

    def headers(self) -> dict[str, str]:
        """``Retry-After``, in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


class StoreUnavailable(HubError):
    """The hub's database cannot be reached just now (a server restarting, a network cut);
    nothing was done. The hub reconnects by itself: try again after ``retry_after`` seconds.
    """

    status = 503
    code = "store_unavailable"

    def __init__(self, message: str, retry_after: int = 2) -> None:
        self.retry_after = retry_after
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        """``Retry-After``, in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


HUB_ERRORS: dict[str, type[HubError]] = {
    cls.code: cls
    for cls in (InvalidInput, Unauthenticated, Forbidden, NotFound, AlreadyDecided,
                AlreadyAnswered, Conflict, TargetTaken, PayloadTooLarge, RateLimited, DigestChanged,
                KeyReused)
}


class HubUnavailable(SignoffError):
    """The hub could not be reached, after the client's retries."""


class HubNotConfigured(SignoffError):
    """A worker or task was started with no hub URL; the message names the setting to fix.

    Raised at once, where the step starts, rather than retrying forever against a default
    address that was never meant to be this run's hub.
    """


class StoreError(SignoffError):
    """The store cannot be opened: no database where one should be, or a file that is not one."""


class WaitTimeout(SignoffError):
    """No decision came before the client's own timeout ran out."""


class DecisionError(SignoffError):
    """The event was decided, but not with a value the workflow can continue with."""

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision


class Rejected(DecisionError):
    """The event was rejected: by a person, a policy, or a timeout whose action is ``reject``."""


class Expired(DecisionError):
    """The deadline passed and the event's ``on_timeout`` is ``fail``."""


class Cancelled(DecisionError):
    """The event was cancelled before anyone answered."""


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return repr(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
