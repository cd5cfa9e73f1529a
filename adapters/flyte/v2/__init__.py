"""signoff for Flyte 2: ``new_event`` and ``event.wait()``, shaped like ``flyteplugins.hitl``.

Switching from the plugin is one import::

    import signoff.adapters.flyte.v2 as hitl      # was: import flyteplugins.hitl as hitl

    event = await hitl.new_event.aio("review", data_type=bool, scope="run", prompt="Go on?")
    approved = await event.wait.aio()

The event lives in the signoff hub (``SIGNOFF_URL``, ``SIGNOFF_TOKEN``): reviewers answer it in
the hub's inbox, API or CLI; answers are checked against the type; the first one decides; the
task wakes on the hub's long-poll at once. Its key comes from the run and action names, so a
restarted task finds its event (and its answer) again.

Code written against Flyte's built-in ``flyte.new_condition`` switches the same way:
``from signoff.adapters.flyte.v2 import new_condition`` keeps its call shape and its errors.
"""

from __future__ import annotations

from .._common import require

require("flyte", "flyte2")

from ._condition import Condition, new_condition  # noqa: E402
from ._event import Event, EventScope, EventTimeout, env, new_event  # noqa: E402

__all__ = ["Condition", "Event", "EventScope", "EventTimeout", "env", "new_condition",
           "new_event"]
