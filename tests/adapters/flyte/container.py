"""Run a compiled task the way a Flyte pod does: ``pyflyte-execute`` with its serialized args.

The task template comes from flytekit's own serializer, inputs are written as the LiteralMap
protobuf propeller would write, and outputs (or the error document) are read back the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyteidl.core import errors_pb2, literals_pb2
from flytekit.configuration import Image, ImageConfig, SerializationSettings
from flytekit.models.admin.workflow import WorkflowSpec
from flytekit.models.task import TaskSpec
from flytekit.tools.translator import get_serializable

SETTINGS = SerializationSettings(
    image_config=ImageConfig(default_image=Image(name="default", fqn="signoff-test", tag="v1")),
    project="reports", domain="development", version="v1")


@dataclass
class Compiled:
    """A workflow serialized as for registration: its spec and every task template by name."""

    workflow: Any
    tasks: dict[str, Any]

    def node(self, node_id: str) -> Any:
        return next(n for n in self.workflow.template.nodes if n.id == node_id)

    def nodes_running(self, task_name: str) -> list[Any]:
        return [n for n in self.workflow.template.nodes
                if n.task_node is not None and n.task_node.reference_id.name.endswith(task_name)]

    def gate(self, signal_id: str) -> Any:
        for n in self.workflow.template.nodes:
            gate = n.gate_node
            if gate is None:
                continue
            cond = gate.signal or gate.approve
            if cond is not None and cond.signal_id == signal_id:
                return n
        raise AssertionError(f"no gate node for signal {signal_id!r}")


def compile_workflow(wf: Any) -> Compiled:
    entities: OrderedDict[Any, Any] = OrderedDict()
    spec = get_serializable(entities, SETTINGS, wf)
    assert isinstance(spec, WorkflowSpec)
    tasks = {v.template.id.name: v for v in entities.values() if isinstance(v, TaskSpec)}
    return Compiled(spec, tasks)


@dataclass
class Ran:
    outputs: dict[str, literals_pb2.Literal] | None
    error: str | None


def run_container(task_spec: Any, inputs: dict[str, literals_pb2.Literal], workdir: Path,
                  execution: tuple[str, str, str], env: dict[str, str]) -> Ran:
    """``pyflyte-execute`` the task with these input literals, as one attempt of one execution."""
    workdir.mkdir(parents=True, exist_ok=True)
    inputs_pb = workdir / "inputs.pb"
    inputs_pb.write_bytes(literals_pb2.LiteralMap(literals=inputs).SerializeToString())
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    fills = {"{{.input}}": str(inputs_pb), "{{.outputPrefix}}": str(out),
             "{{.rawOutputDataPrefix}}": str(workdir / "raw"),
             "{{.checkpointOutputPrefix}}": str(workdir / "ckpt"), "{{.prevCheckpointPrefix}}": ""}
    args = [fills.get(a, a) for a in task_spec.template.container.args]
    assert args[0] == "pyflyte-execute", args
    args[0] = str(Path(sys.executable).parent / "pyflyte-execute")
    project, domain, name = execution
    full_env = {**os.environ, **env, "FLYTE_INTERNAL_EXECUTION_PROJECT": project,
                "FLYTE_INTERNAL_EXECUTION_DOMAIN": domain, "FLYTE_INTERNAL_EXECUTION_ID": name,
                "FLYTE_INTERNAL_TASK_NAME": task_spec.template.id.name}
    done = subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=240)
    if (out / "outputs.pb").exists():
        literal_map = literals_pb2.LiteralMap()
        literal_map.ParseFromString((out / "outputs.pb").read_bytes())
        return Ran(dict(literal_map.literals), None)
    if (out / "error.pb").exists():
        document = errors_pb2.ErrorDocument()
        document.ParseFromString((out / "error.pb").read_bytes())
        return Ran(None, document.error.message)
    raise AssertionError(f"pyflyte-execute wrote nothing (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def binding_literal(node: Any, var: str) -> literals_pb2.Literal:
    """A node's static input, as the literal propeller would pass."""
    binding = next(b for b in node.inputs if b.var == var)
    return _static(binding)


def _static(binding: Any) -> literals_pb2.Literal:
    data = binding.binding
    assert data.scalar is not None, f"{binding.var} is not a static input"
    return literals_pb2.Literal(scalar=data.scalar.to_flyte_idl())
