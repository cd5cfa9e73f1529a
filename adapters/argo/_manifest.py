"""Manifests: a gate's templates as plain data and YAML, hera validation, and ``wrap``.

``wrap`` inserts a gate before a named step (or DAG task) of an existing workflow manifest and
guards that step with ``when: <gate value> == true``, so neither a rejection nor Argo's own
timeout (which leaves ``value`` at ``false``) lets it run.
"""

from __future__ import annotations

import contextvars
import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic.v1 import ValidationError as V1ValidationError

from signoff.adapters.argo._common import ArgoExtraMissing
from signoff.adapters.argo._templates import ArgoGate, approval

try:
    import yaml
    from hera.workflows import Workflow, models
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ArgoExtraMissing("PyYAML and hera") from exc

__all__ = ["dump_yaml", "render", "standalone_workflow", "template_dicts", "validate", "wrap"]

_MODELS: dict[str, Any] = {
    "Workflow": models.Workflow,
    "WorkflowTemplate": models.WorkflowTemplate,
    "ClusterWorkflowTemplate": models.ClusterWorkflowTemplate,
    "CronWorkflow": models.CronWorkflow,
}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the JSON body reads as it will be sent)."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any) -> str:
    """YAML as Argo users write it: keys in order, block scalars for multi-line text."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100, allow_unicode=True)


def template_dicts(gate: ArgoGate) -> list[dict[str, Any]]:
    """The gate's templates as Argo manifest data (what goes under ``spec.templates``)."""
    def build() -> list[dict[str, Any]]:
        spec = Workflow(name="render", templates=list(gate.templates)).to_dict()["spec"]
        templates: list[dict[str, Any]] = spec["templates"]
        return templates

    return [_name_first(t) for t in contextvars.Context().run(build)]


def _name_first(data: Any) -> Any:
    """Hera dumps keys alphabetically; a template or step reads better with its name first."""
    if isinstance(data, dict):
        ordered = {"name": data["name"]} if "name" in data else {}
        ordered.update((k, _name_first(v)) for k, v in data.items() if k != "name")
        return ordered
    if isinstance(data, list):
        return [_name_first(item) for item in data]
    return data


def render(gate: ArgoGate, *, workflow: bool = False) -> str:
    """YAML to paste: the gate's templates, with the step to add as comments.

    With ``workflow=True``, a complete Workflow whose entrypoint is the gate alone.
    """
    if workflow:
        return dump_yaml(standalone_workflow(gate))
    templates = template_dicts(gate)
    for template in templates:
        _round_trip(models.Template, template)
    when = gate.when() if gate.kind in ("approval", "bool") else None
    lines = [
        f"# signoff gate {gate.name!r}: add these templates under spec.templates, and call it",
        "# from a steps template:",
        f"#   - - name: {gate.name}",
        f"#       template: {gate.name}",
        "# or from a dag template:",
        f"#   - name: {gate.name}",
        f"#     template: {gate.name}",
        f"# Later steps read {gate.value()} and "
        f"{{{{steps.{gate.name}.outputs.parameters.outcome}}}}.",
    ]
    if when:
        lines.append(f"# Guard the protected step with: when: \"{when}\"")
    return "\n".join(lines) + "\n" + dump_yaml(templates)


def standalone_workflow(gate: ArgoGate) -> dict[str, Any]:
    """A complete Workflow whose entrypoint runs the gate alone (validated)."""
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{gate.name}-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": gate.name, "template": gate.name}]]},
            *template_dicts(gate)]},
    }
    validate(manifest)
    return manifest


def validate(manifest: Mapping[str, Any]) -> None:
    """Check a manifest against hera's Argo models; every field must survive a round trip.

    hera's models ignore unknown fields, so a misspelt key would pass a plain parse; the
    round trip (parse, dump, compare) catches it and wrong types alike.

    Raises:
        ValueError: naming the first field that is unknown, missing or of the wrong type.
    """
    kind = manifest.get("kind")
    model = _MODELS.get(str(kind))
    if model is None:
        raise ValueError(f"kind: expected one of {sorted(_MODELS)}, got {kind!r}")
    data = copy.deepcopy(dict(manifest))
    for _ in range(_QUANTITY_PASSES):
        try:
            dumped = _round_trip(model, data)
            break
        except (ValidationError, V1ValidationError) as exc:
            errors: list[Any] = list(exc.errors())  # v1 and v2 error dicts differ in keys
            if not _spell_numbers_as_strings(data, errors):
                problems = [f"{_path(e['loc'])}: {e['msg']}"
                            + (f", got {e['input']!r}" if "input" in e else "") for e in errors]
                raise ValueError(_listed(str(kind), problems)) from None
    else:
        raise ValueError(_listed(str(kind), ["too many numbers where strings are expected"]))
    problems = _differences(dict(manifest), dumped, "")
    if problems:
        raise ValueError(_listed(str(kind), problems))


_QUANTITY_PASSES = 4


def _spell_numbers_as_strings(data: Any, errors: list[Any]) -> bool:
    """Where the only complaints are numbers given for strings in fields that take either
    (``cpu: 1``: Kubernetes reads quantities and int-or-string fields either way, hera's models
    only as strings), write each number as its string in ``data``; returns whether every error
    was of that kind.
    """
    numbers = [e for e in errors if isinstance(e.get("input"), (int, float))
               and not isinstance(e.get("input"), bool) and "string" in str(e.get("msg"))
               and _takes_a_number(e["loc"])]
    if len(numbers) != len(errors):
        return False
    for error in numbers:
        *parents, last = error["loc"]
        holder = data
        for part in parents:
            holder = holder[part]
        holder[last] = str(error["input"])
    return True


# Kubernetes quantities (under these keys) and int-or-string fields (these names): a number is
# as good as its string there; anywhere else (a name, an image) Argo refuses a number
_QUANTITY_KEYS = frozenset({"resources", "limits", "requests", "overhead", "sizeLimit",
                            "storage"})
_INT_OR_STRING = frozenset({"port", "targetPort", "maxSurge", "maxUnavailable", "limit",
                            "activeDeadlineSeconds", "parallelism"})


def _takes_a_number(loc: Any) -> bool:
    keys = [part for part in loc if isinstance(part, str)]
    return bool(keys) and (keys[-1] in _INT_OR_STRING or bool(_QUANTITY_KEYS & set(keys)))


def _listed(kind: str, problems: list[str]) -> str:
    """Every problem at once, on one line."""
    return f"{kind} is not valid for Argo (hera's models): " + "; ".join(problems)


def _path(loc: Any) -> str:
    """A location as ``spec.templates[0].container``: the one path style of every message."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _round_trip(model: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """Parse with hera's model and dump back to JSON data (hera 7: pydantic v2 models;
    hera 5: pydantic-v1-style ones).
    """
    if hasattr(model, "model_validate"):
        dumped: dict[str, Any] = model.model_validate(data).model_dump(
            mode="json", by_alias=True, exclude_none=True)
        return dumped
    loaded: dict[str, Any] = json.loads(model.parse_obj(data).json(by_alias=True,
                                                                     exclude_none=True))
    return loaded


def _differences(given: Any, parsed: Any, path: str) -> list[str]:
    """Where ``given`` did not survive hera's round trip: unknown fields and wrong types."""
    if isinstance(given, Mapping) and isinstance(parsed, Mapping):
        found: list[str] = []
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in parsed:
                found.append(f"{where}: not a field Argo knows")
            else:
                found += _differences(value, parsed[key], where)
        return found
    if isinstance(given, list) and isinstance(parsed, list) and len(given) == len(parsed):
        return [problem for index, (left, right) in enumerate(zip(given, parsed, strict=True))
                for problem in _differences(left, right, f"{path}[{index}]")]
    if given != parsed and not _same_quantity(given, parsed):
        return [f"{path}: expected {type(parsed).__name__} like {parsed!r}, got {given!r}"]
    return []


def _same_quantity(given: Any, parsed: Any) -> bool:
    """A number where the model keeps a string (a Kubernetes quantity such as ``cpu: 1``, or
    an int-or-string port): Kubernetes takes either spelling, and hera dumps the string.
    """
    return (isinstance(given, (int, float)) and not isinstance(given, bool)
            and isinstance(parsed, str) and parsed in (str(given), repr(given)))


def wrap(manifest: Mapping[str, Any], before: str, *, gate: ArgoGate | None = None,
         template: str | None = None, **options: Any) -> dict[str, Any]:
    """A copy of ``manifest`` with an approval before the step or task named ``before``.

    Args:
        manifest: a Workflow, WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow.
        before: the step or task to guard.
        gate: the gate to insert; by default ``approval("approve-<before>", ...)`` built
            from ``options`` (``prompt``, ``hub``, ``timeout``...).
        template: the steps or dag template holding ``before``, when several do.
        **options: options of the default gate (see :func:`input_step`).

    Raises:
        ValueError: the step is missing or ambiguous, a name clashes, or the result is not
            a valid manifest; the message says which.
    """
    result = copy.deepcopy(dict(manifest))
    spec = _workflow_spec(result)
    templates = spec.get("templates") or []
    holders = [t for t in templates if (template is None or t.get("name") == template)
               and _find(t, before) is not None]
    if not holders:
        names = sorted({str(s.get("name")) for t in templates for s in _calls(t)})
        where = f"template {template!r}" if template else "any steps or dag template"
        raise ValueError(f"before: no step or task named {before!r} in {where} "
                         f"(found {names})")
    if len(holders) > 1:
        raise ValueError(f"before: {before!r} is in templates "
                         f"{[t.get('name') for t in holders]}; choose one with template=")
    holder = holders[0]
    if gate is None:
        options.setdefault("prompt", f"Run step '{before}' of workflow {{{{workflow.name}}}}?")
        gate = approval(_default_name(before), options.pop("prompt"), **options)
    elif options:
        raise TypeError("wrap: pass a gate or its options, not both")
    if gate.kind not in ("approval", "bool"):
        raise ValueError(f"gate: wrap guards a step with an approval, got a {gate.kind} gate")
    taken = {t.get("name") for t in templates}
    clash = sorted(taken & {t["name"] for t in template_dicts(gate)})
    if clash or any(s.get("name") == gate.name for s in _calls(holder)):
        raise ValueError(f"name: {gate.name!r} clashes with existing templates or steps "
                         f"{clash or [gate.name]}; choose another gate name")
    dag = "dag" in holder
    if dag:
        _insert_task(holder, before, gate)
    else:
        _insert_step(holder, before, gate)
    spec["templates"] = [*templates, *template_dicts(gate)]
    validate(result)
    return result


def _default_name(before: str) -> str:
    name = f"approve-{before}".lower()
    return name[:54].rstrip("-")


def _workflow_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    kind = manifest.get("kind")
    if kind not in _MODELS:
        raise ValueError(f"kind: expected one of {sorted(_MODELS)}, got {kind!r}")
    spec = manifest.get("spec")
    if kind == "CronWorkflow":
        spec = (spec or {}).get("workflowSpec")
    if not isinstance(spec, dict):
        raise ValueError(f"spec: expected the {kind}'s spec, got {spec!r}")
    return spec


def _calls(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "steps" in template:
        return [s for group in template.get("steps") or [] for s in group or []]
    if "dag" in template:
        return list((template.get("dag") or {}).get("tasks") or [])
    return []


def _find(template: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in _calls(template) if s.get("name") == name), None)


def _guard(call: dict[str, Any], condition: str) -> None:
    old = call.get("when")
    call["when"] = f"({old}) && {condition}" if old else condition


def _insert_step(holder: dict[str, Any], before: str, gate: ArgoGate) -> None:
    groups = holder["steps"]
    index = next(i for i, group in enumerate(groups)
                 if any(s.get("name") == before for s in group or []))
    # the gate is a step group of its own: parallel siblings of ``before`` wait for it too,
    # but only ``before`` is guarded
    groups.insert(index, [{"name": gate.name, "template": gate.name}])
    target = _find(holder, before)
    assert target is not None
    _guard(target, gate.when(gate.name))


def _insert_task(holder: dict[str, Any], before: str, gate: ArgoGate) -> None:
    tasks = holder["dag"]["tasks"]
    target = _find(holder, before)
    assert target is not None
    task: dict[str, Any] = {"name": gate.name, "template": gate.name}
    # the gate takes over the target's dependencies; the target then depends on the gate
    for key in ("dependencies", "depends"):
        if key in target:
            task[key] = target.pop(key)
    target["depends"] = gate.name
    _guard(target, gate.when(gate.name, dag=True))
    tasks.insert(tasks.index(target), task)
