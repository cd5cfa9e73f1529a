"""Batch decisions from the inbox: tick several events, approve or reject them together.

``POST /batch`` (CSRF, like every form) takes the ticked ``event`` ids, ``choice`` (approve or
reject) and one ``comment``. The events must share their name or their source run (a reviewer
decides one kind of thing at a time). Each one then goes through :meth:`Hub.respond` on its
own — its input, the reviewer's rights, quorum and self-approval rules — and the result page
says which were recorded and which were refused and why. Events of an impact level in
``batch_refused_impacts`` (the hub-wide default) are refused: they need their own page; so are
events whose policy says ``forbid_batch`` (set by the workflow, or by a policy-file rule's
``forbid_batch_impacts`` for the event's impact level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .._errors import HubError, InvalidInput
from .._limits import check_text
from .._model import Event
from .context import readable
from .forms import text_of
from .web import _hub, _page, _post_only, _posted, _session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Outcome:
    """What became of one event of a batch."""

    id: str
    prompt: str
    recorded: bool
    words: str


def _one_kind(events: list[Event]) -> bool:
    names = {e.name for e in events}
    runs = {e.source.run for e in events}
    return len(names) == 1 or (len(runs) == 1 and None not in runs)


@router.post("/batch")
async def batch(request: Request) -> Response:
    """Decide the ticked events one by one; the page lists what was recorded and refused."""
    session = await _session(request)
    form = await _posted(request, session)
    hub = _hub(request)
    settings = hub.settings
    ids = list(dict.fromkeys(v for v in form.getlist("event") if isinstance(v, str)))
    choice = text_of(form, "choice")
    comment = text_of(form, "comment").replace("\r\n", "\n").strip()
    if not ids:
        raise InvalidInput("event", "at least one ticked event", None)
    if len(ids) > settings.batch_max:
        raise InvalidInput("event", f"at most {settings.batch_max} events", len(ids))
    if choice not in ("approve", "reject"):
        raise InvalidInput("choice", "approve or reject", choice or None)
    if len(comment) > 10_000:
        raise InvalidInput("comment", "at most 10000 characters", f"{len(comment)} characters")
    check_text("comment", comment)  # refused once, not once per ticked event
    events = [await hub.get(session.who, i) for i in ids]  # 403/404 before anything is written
    if not _one_kind(events):
        raise InvalidInput("event", "events of one name or of one source run", 
                           sorted({e.name for e in events}))
    results: list[Outcome] = []
    for event in events:
        results.append(await _decide_one(request, session.who, event, choice, comment))
    return _page("batch.html", session=session, results=results, choice=choice,
                 recorded=sum(r.recorded for r in results))


async def _decide_one(request: Request, who: Any, event: Event, choice: str,
                      comment: str) -> Outcome:
    hub = _hub(request)
    settings = hub.settings

    def refused(why: str) -> Outcome:
        return Outcome(event.id, event.prompt, False, why)

    if event.input.kind != "approval":
        return refused(f"it asks for {event.input.kind}, not approve or reject: answer it on "
                       "its own page")
    if event.impact in settings.batch_refused_impacts:
        return refused(f"the hub allows no batch decisions for {event.impact}-impact events: "
                       "decide it on its own page")
    if event.policy is not None and event.policy.forbid_batch:
        return refused(f"its policy forbids batch decisions{_for_impact(event)}: decide it "
                       "on its own page")
    if event.status != "pending":
        return refused(f"it is already {event.status}")
    try:
        done = await hub.respond(who, event.id, choice == "approve", comment or None,
                                 channel="web")
    except HubError as exc:
        return refused(exc.message)
    if done.decision is None:
        return Outcome(event.id, event.prompt, True,
                       "your answer was recorded; the event waits for more answers")
    return Outcome(event.id, event.prompt, True,
                   f"{readable(done.decision.value, 'approval')} by {done.decision.by}")


def _for_impact(event: Event) -> str:
    return f" for {event.impact}-impact events" if event.impact else ""


router.add_api_route("/batch", _post_only, methods=["GET"])
