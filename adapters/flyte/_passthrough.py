"""``approve`` in task mode: a waiting task that passes its upstream value through unchanged.

The upstream value can be of any type, so one task per literal type is made on demand. A Flyte
container finds it again through :data:`approve_resolver`, whose loader arguments carry the
literal type; the value is copied as a literal and never converted, so nothing is lost on the way.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flytekit.configuration import SerializationSettings
from flytekit.core.base_task import TaskResolverMixin
from flytekit.core.context_manager import FlyteContext
from flytekit.core.interface import Interface
from flytekit.core.python_auto_container import PythonAutoContainerTask
from flytekit.core.tracker import TrackedInstance
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.models.types import LiteralType
from google.protobuf.json_format import MessageToDict, ParseDict

from ._tasks import create_event, wait_event

__all__ = ["ApproveTask", "approve_resolver", "approve_task_for"]


def _literal_type_json(literal_type: LiteralType) -> str:
    return json.dumps(MessageToDict(literal_type.to_flyte_idl()), sort_keys=True)


class ApproveTask(PythonAutoContainerTask[None]):  # type: ignore[misc]
    """Create an approval event, wait for it, and pass ``value`` on only when approved."""

    def __init__(self, python_type: Any, literal_type_json: str) -> None:
        digest = hashlib.sha1(literal_type_json.encode()).hexdigest()[:12]
        name = f"signoff.adapters.flyte.approve_{digest}"
        self.literal_type_json = literal_type_json
        super().__init__(
            name=name, task_config=None, task_resolver=approve_resolver,
            interface=Interface(inputs={"request": str, "value": python_type},
                                outputs={"o0": python_type}),
        )
        # made while a workflow compiles, flytekit would hand it to the workflow's resolver,
        # which cannot find it again in a container; only ours can
        self._task_resolver = approve_resolver
        self._name = name

    def execute(self, **kwargs: Any) -> Any:
        """Not used: :meth:`dispatch_execute` works on literals."""
        raise NotImplementedError

    def dispatch_execute(self, ctx: FlyteContext, input_literal_map: LiteralMap) -> LiteralMap:
        """Wait for the decision; on approval hand the upstream literal on as it came."""
        request = input_literal_map.literals["request"].scalar.primitive.string_value
        wait_event(create_event(request, "task"), gate=True)  # raises unless approved
        return LiteralMap(literals={"o0": input_literal_map.literals["value"]})


class ApproveResolver(TrackedInstance, TaskResolverMixin):  # type: ignore[misc]
    """Finds an :class:`ApproveTask` again from the literal type in its loader arguments."""

    def name(self) -> str:
        """The resolver's name."""
        return "signoff-approve"

    def load_task(self, loader_args: list[str]) -> ApproveTask:
        """Rebuild the task for the literal type given at serialization."""
        if len(loader_args) != 2 or loader_args[0] != "literal-type":
            raise ValueError(f"signoff approve task: expected loader args "
                             f"['literal-type', JSON], got {loader_args!r}")
        from flyteidl.core import types_pb2

        literal_type = LiteralType.from_flyte_idl(
            ParseDict(json.loads(loader_args[1]), types_pb2.LiteralType()))
        return ApproveTask(TypeEngine.guess_python_type(literal_type), loader_args[1])

    def loader_args(self, settings: SerializationSettings, t: Any) -> list[str]:
        """The literal type the task passes through."""
        return ["literal-type", t.literal_type_json]

    def get_all_tasks(self) -> list[Any]:
        """Tasks are made on demand; none to list."""
        return []


approve_resolver = ApproveResolver()

_made: dict[str, ApproveTask] = {}


def approve_task_for(python_type: Any) -> ApproveTask:
    """The (shared) approve task for values of ``python_type``."""
    key = _literal_type_json(TypeEngine.to_literal_type(python_type))
    if key not in _made:
        _made[key] = ApproveTask(python_type, key)
    return _made[key]
