"""Build a kustomization the way ``kustomize build`` does, for the few features our manifests use.

No kustomize or helm binary runs here, so the tests build ``deploy/kustomize`` themselves:
``resources`` (files and folders, recursively), ``patches`` holding RFC 6902 JSON patches with a
``target`` by kind and name, and ``namespace``. Any other key of a kustomization is refused,
so a manifest that starts using one fails here until this builder learns it, rather than being
checked as something it is not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KEYS = {"apiVersion", "kind", "resources", "patches", "namespace"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "IngressClass", "PriorityClass"}


class KustomizeError(Exception):
    """A kustomization this builder cannot build (as kustomize would refuse it, or unknown)."""


def build(folder: Path) -> list[dict[str, Any]]:
    """The resources ``kustomize build folder`` prints, as dictionaries."""
    path = folder / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    unknown = set(spec) - KEYS
    if unknown:
        raise KustomizeError(f"{path}: this builder does not know {sorted(unknown)}")
    if spec.get("kind") != "Kustomization":
        raise KustomizeError(f"{path}: kind is {spec.get('kind')!r}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        source = (folder / entry).resolve()
        if source.is_dir():
            docs += build(source)
        elif source.is_file():
            docs += [d for d in yaml.safe_load_all(source.read_text()) if d]
        else:
            raise KustomizeError(f"{path}: resource {entry} does not exist")
    for patch in spec.get("patches", []):
        _apply(path, docs, patch)
    namespace = spec.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        ident = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        if ident in seen:
            raise KustomizeError(f"{path}: {ident} appears twice")
        seen.add(ident)
    return docs


def _apply(path: Path, docs: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    if set(patch) - {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise KustomizeError(f"{path}: this builder knows only inline patches with a target "
                             f"by kind and name, got {patch}")
    target = patch["target"]
    matches = [d for d in docs if all(
        (d["kind"] if key == "kind" else d["metadata"]["name"]) == value
        for key, value in target.items())]
    if len(matches) != 1:
        raise KustomizeError(f"{path}: patch target {target} matches {len(matches)} resources")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise KustomizeError(f"{path}: only JSON 6902 patches (a list of operations)")
    index = docs.index(matches[0])
    patched = copy.deepcopy(matches[0])
    for operation in operations:
        _operate(patched, operation)
    docs[index] = patched


def _operate(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    op, pointer = operation["op"], operation["path"]
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        if op == "add":
            parent.insert(len(parent) if last == "-" else int(last), operation["value"])
        elif op == "replace":
            parent[int(last)] = operation["value"]
        elif op == "remove":
            del parent[int(last)]
        else:
            raise KustomizeError(f"operation {op!r} not known to this builder")
        return
    if op == "replace" or op == "remove":
        if last not in parent:
            raise KustomizeError(f"{pointer}: nothing to {op}")
        if op == "remove":
            del parent[last]
            return
    elif op != "add":
        raise KustomizeError(f"operation {op!r} not known to this builder")
    parent[last] = operation["value"]
