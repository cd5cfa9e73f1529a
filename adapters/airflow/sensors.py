"""Deferrable sensors that ask a person through the signoff hub and go on with the answer.

```python
approve = ApprovalSensor(task_id="approve_load", prompt="Load {{ ds }} into prod?",
                         context={"rows": "{{ ti.xcom_pull('count') }}"},
                         assignees=["group:data-owners"], timeout=timedelta(hours=8))
extract >> approve >> load
```

``execute`` creates the event with the key ``airflow:<dag_id>:<run_id>:<task_id>:<map_index>``
(a retry finds the same event, so nobody is asked twice; after the run was cleared the key
gets ``:clear<N>`` and the question is asked again), returns at once when the hub already
decided (a policy, or an earlier try), and otherwise defers to
:class:`~signoff.adapters.airflow.triggers.SignoffTrigger`: no worker slot is held while a
person thinks. ``execute_complete`` turns the decision into Airflow's idioms:

| decision  | ApprovalSensor                       | InputSensor        | BranchSensor               |
| --------- | ------------------------------------ | ------------------ | -------------------------- |
| answered  | ``True``                             | the value          | follows the chosen task(s) |
| rejected  | ``on_reject``: skip downstream (returns ``False``) or fail | fails (``False`` for an approval input) | skips every branch, or fails |
| expired   | fails: :class:`SignoffExpired`       | same               | same                       |
| cancelled | fails: :class:`SignoffCancelled`     | same               | same                       |

Every sensor pushes the XCom ``signoff_event`` (id, key, hub) when it asks and
``signoff_decision`` (outcome, value, by, comment) when it is answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic
from airflow.sdk.bases.branch import BranchMixIn
from airflow.sdk.bases.skipmixin import SkipMixin

from signoff import ApprovalInput, ChoiceInput, Decision, MultiChoiceInput

from ._base import _errors, _SignoffSensor
from .exceptions import SignoffRejected

__all__ = ["ApprovalSensor", "BranchSensor", "InputSensor"]


class ApprovalSensor(_SignoffSensor, SkipMixin):
    """Waits for approve or reject; approval lets the downstream tasks run.

    Args:
        on_reject: ``skip`` (default, like a short-circuit and Airflow's ApprovalOperator: the
            task succeeds with ``False`` and its downstream tasks are skipped) or ``fail``
            (the task fails with :class:`SignoffRejected`, without retries).
        ignore_downstream_trigger_rules: with ``skip``, skip every task downstream rather than
            the direct ones only (whose trigger rules then decide about the rest).
        default: the answer ``on_timeout="default"`` takes.
        **kwargs: everything :class:`_SignoffSensor` and ``BaseSensorOperator`` take.
    """

    inherits_from_skipmixin = True

    def __init__(self, *, on_reject: Literal["skip", "fail"] = "skip",
                 ignore_downstream_trigger_rules: bool = False, default: bool | None = None,
                 **kwargs: Any) -> None:
        if on_reject not in ("skip", "fail"):
            raise ValueError(f"on_reject: expected 'skip' or 'fail', got {on_reject!r}")
        if "input" in kwargs:
            raise ValueError("input: an ApprovalSensor always asks approve/reject; "
                             "use InputSensor for other answers")
        super().__init__(input=ApprovalInput(default=default), **kwargs)
        self.on_reject = on_reject
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def finish_in_trigger(self) -> str:
        """An approval ends the task in the trigger, unless a subclass reads answers itself."""
        return "approved" if type(self).answered is ApprovalSensor.answered else ""

    def answered(self, context: Any, decision: Decision) -> Any:
        """``True``; a default of ``False`` taken at the deadline counts as a rejection."""
        if decision.value is False:
            return self.rejected(context, decision, f"signoff: {self.prompt!r} was not approved "
                                                    f"before the deadline (default: reject)")
        return True

    def rejected(self, context: Any, decision: Decision, message: str) -> Any:
        """Skip the downstream tasks and return ``False``, or fail."""
        if self.on_reject == "fail":
            raise SignoffRejected(message, decision)
        ti, task = context["ti"], context["task"]
        # the skip below ends execute by an exception: push the return value first
        ti.xcom_push(key="return_value", value=False)
        downstream = (task.get_flat_relatives(upstream=False)
                      if self.ignore_downstream_trigger_rules
                      else task.get_direct_relatives(upstream=False))
        to_skip = [t for t in downstream if not t.is_teardown]
        if to_skip:
            self.log.info("%s; skipping %s", message, sorted(t.task_id for t in to_skip))
            self.skip(ti=ti, tasks=to_skip)
        return False


class InputSensor(_SignoffSensor):
    """Waits for a typed answer and returns it (so it is the task's XCom ``return_value``).

    Args:
        input: what answer is expected: ``int``, ``float``, ``str``, ``bool``, an ``Enum``, a
            ``Literal[...]``, ``list[Literal[...]]``, a pydantic model (a form), a dict spec
            such as ``{"kind": "int", "min": 1, "max": 10, "default": 3}`` or a spec object.
        on_reject: a rejection (only a deadline with ``on_timeout="reject"`` rejects a typed
            question) ``fail``s the task (default) or ``skip``s it.
        **kwargs: everything :class:`_SignoffSensor` and ``BaseSensorOperator`` take.
    """

    def __init__(self, *, input: Any, on_reject: Literal["fail", "skip"] = "fail",
                 **kwargs: Any) -> None:
        if on_reject not in ("skip", "fail"):
            raise ValueError(f"on_reject: expected 'fail' or 'skip', got {on_reject!r}")
        super().__init__(input=input, **kwargs)
        self.on_reject = on_reject

    def rejected(self, context: Any, decision: Decision, message: str) -> Any:
        """An approval input gives ``False``; any other kind fails or skips."""
        if self.input_spec.kind == "approval":
            return False
        return super().rejected(context, decision, message)


class BranchSensor(_SignoffSensor, BranchMixIn):
    """Asks which way to go and follows the chosen downstream task(s), like a branch operator.

    Args:
        options: the task ids to choose from, or a mapping from the option a reviewer sees
            to the task id (or list of task ids, or task group id) it selects.
        multiple: allow choosing several options.
        default: the option(s) ``on_timeout="default"`` takes.
        on_reject: a rejection (a deadline with ``on_timeout="reject"``) ``skip``s every
            branch (default) or ``fail``s the task.
        **kwargs: everything :class:`_SignoffSensor` and ``BaseSensorOperator`` take.
    """

    inherits_from_skipmixin = True

    def __init__(self, *, options: Sequence[str] | Mapping[str, str | Sequence[str]],
                 multiple: bool = False, default: str | Sequence[str] | None = None,
                 on_reject: Literal["skip", "fail"] = "skip", **kwargs: Any) -> None:
        if "input" in kwargs:
            raise ValueError("input: a BranchSensor builds its input from options")
        if on_reject not in ("skip", "fail"):
            raise ValueError(f"on_reject: expected 'skip' or 'fail', got {on_reject!r}")
        mapping = dict(options) if isinstance(options, Mapping) else {o: o for o in options}
        if not mapping:
            raise ValueError("options: expected at least one task id, got none")
        labels = list(mapping)
        spec: ChoiceInput | MultiChoiceInput
        try:
            if multiple:
                spec = MultiChoiceInput(options=labels, min_selected=1,
                                        default=None if default is None else list(default))
            else:
                spec = ChoiceInput(options=labels, default=default)  # type: ignore[arg-type]
        except pydantic.ValidationError as exc:
            raise ValueError(f"options/default: {_errors(exc, whole=False)}") from exc
        super().__init__(input=spec, **kwargs)
        self.options = mapping
        self.multiple = multiple
        self.on_reject = on_reject

    def answered(self, context: Any, decision: Decision) -> Any:
        """Follow the task ids of the chosen option(s); return them."""
        chosen = decision.value if isinstance(decision.value, list) else [decision.value]
        task_ids: list[str] = []
        for option in chosen:
            target = self.options[str(option)]
            task_ids.extend([target] if isinstance(target, str) else target)
        branches: str | list[str] = task_ids[0] if len(task_ids) == 1 else task_ids
        context["ti"].xcom_push(key="return_value", value=branches)
        return self.do_branch(context, branches)

    def rejected(self, context: Any, decision: Decision, message: str) -> Any:
        """Skip every branch, or fail."""
        if self.on_reject == "fail":
            raise SignoffRejected(message, decision)
        self.log.info("%s; skipping every branch", message)
        context["ti"].xcom_push(key="return_value", value=None)
        return self.do_branch(context, None)
