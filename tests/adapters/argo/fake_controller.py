"""A FAKE workflow controller that runs a signoff gate from a rendered manifest, for real.

No Kubernetes or Argo runs here, so this plays the controller's part for exactly the templates
a gate renders, reading them from the manifest as Argo would: it resolves the gate step's
arguments (``{{workflow.uid}}``, ``{{node.name}}``, ``{{item}}``), runs the register template
(the ``http`` template's request, headers from Secrets, ``successCondition``; or the script
template's source with ``sh`` and the real ``curl``, its stdout as the result) against the
real hub, retries it as its ``retryStrategy`` says (backoff shortened), resolves the wait
step's ``{{=jsonpath(...)}}`` argument, and records a running suspend node in the fake Argo
Server, which the hub's resumer then sets. A suspend ``duration`` resumes the node with its
defaults, as Argo does. When the gate has a third step (``verify``), it runs once the
suspend node has succeeded, as the container Argo would start: its command with the real
``signoff`` of this environment (the image is not pulled), env from Secrets, and each volume
mount of a projected service-account token served by ``service_account_token`` (the kubelet's
part) in a temporary directory that stands in for the mount path in the command, arguments,
script source and env values. Unknown template shapes raise instead of being skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .fake_argo import FakeArgoServer, apply_defaults, now
from .fake_expr import evaluate, substitute

__all__ = ["FakeController", "GateRun"]


class ControllerError(Exception):
    """The manifest asks for something the fake controller cannot do (or Argo would refuse)."""


@dataclass
class GateRun:
    """One gate step running in a fake workflow."""

    server: FakeArgoServer
    workflow: dict[str, Any]
    node_name: str
    register_result: str | None = None
    register_error: str | None = None
    wait_node_id: str | None = None
    verify_node_id: str | None = None
    verify_seconds: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    registered: threading.Event = field(default_factory=threading.Event)
    checked: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> str:
        """The event key the gate registers with."""
        return f"argo:{self.workflow['metadata']['uid']}:{self.node_name}"

    def wait_node(self, timeout: float = 30.0) -> dict[str, Any]:
        """The suspend node's status, once registration is done."""
        if not self.done.wait(timeout):
            raise AssertionError("the gate did not reach its suspend node in time")
        if self.wait_node_id is None:
            raise AssertionError(f"registration failed: {self.register_error}")
        return self.server.node(self.workflow, self.wait_node_id)

    def verify_node(self, timeout: float = 60.0) -> dict[str, Any]:
        """The verify step's node once it ran (Succeeded, or Failed with its output as the
        message)."""
        if not self.checked.wait(timeout):
            raise AssertionError("the verify step did not run in time")
        assert self.verify_node_id is not None, "the gate has no verify step"
        return self.server.node(self.workflow, self.verify_node_id)

    def finished(self, timeout: float) -> dict[str, Any]:
        """The suspend node once it is no longer running."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.wait_node(timeout)
            if node["phase"] != "Running":
                return node
            if time.monotonic() > deadline:
                raise AssertionError(f"suspend node still Running after {timeout} s")
            time.sleep(0.05)


class FakeController:
    """Runs gate steps of workflows stored in a :class:`FakeArgoServer`."""

    def __init__(self, server: FakeArgoServer, retry_scale: float = 0.02,
                 service_account_token: Callable[[str, str, str, int], str] | None = None
                 ) -> None:
        self.server = server
        self.retry_scale = retry_scale
        # (namespace, service account, audience, expirationSeconds) -> a token, as the
        # kubelet gets one from the cluster's issuer for a projected volume
        self.service_account_token = service_account_token
        # one client for all requests: a new one costs ~100 ms of TLS setup each
        self._client = httpx.Client()

    def start_gate(self, workflow: dict[str, Any], step: str, *,
                   item: tuple[int, str] | None = None,
                   hold: threading.Event | None = None) -> GateRun:
        """Run the entrypoint's step ``step`` (a gate) in the background; with ``hold``, the
        suspend node is created only once ``hold`` is set (a slow controller)."""
        entry = self._template(workflow, workflow["spec"]["entrypoint"])
        group, call = next((i, s) for i, g in enumerate(entry["steps"]) for s in g
                           if s["name"] == step)
        name = f"{workflow['metadata']['name']}[{group}].{step}"
        if item is not None:
            name += f"({item[0]}:{item[1]})"
        run = GateRun(self.server, workflow, name)
        thread = threading.Thread(target=self._run, args=(run, call, item, hold), daemon=True)
        thread.start()
        return run

    def _template(self, workflow: dict[str, Any], name: str) -> dict[str, Any]:
        for template in workflow["spec"]["templates"]:
            if template["name"] == name:
                return dict(template)
        raise ControllerError(f"no template {name!r}")

    def _globals(self, workflow: dict[str, Any]) -> dict[str, str]:
        meta = workflow["metadata"]
        scope = {"workflow.name": meta["name"], "workflow.namespace": meta["namespace"],
                 "workflow.uid": meta["uid"]}
        for param in (workflow["spec"].get("arguments") or {}).get("parameters") or []:
            scope[f"workflow.parameters.{param['name']}"] = param.get("value", "")
        return scope

    def _inputs(self, template: dict[str, Any], arguments: dict[str, str]) -> dict[str, str]:
        values = {}
        for param in (template.get("inputs") or {}).get("parameters") or []:
            if param["name"] in arguments:
                values[param["name"]] = arguments[param["name"]]
            elif "default" in param:
                values[param["name"]] = param["default"]
            elif "value" in param:
                values[param["name"]] = param["value"]
            else:
                raise ControllerError(f"inputs.parameters.{param['name']} was not supplied")
        return values

    def _args(self, call: dict[str, Any], scope: dict[str, str]) -> dict[str, str]:
        return {p["name"]: _resolved(substitute(p["value"], scope), p["name"])
                for p in (call.get("arguments") or {}).get("parameters") or []}

    def _run(self, run: GateRun, call: dict[str, Any], item: tuple[int, str] | None,
             hold: threading.Event | None) -> None:
        try:
            self._run_gate(run, call, item, hold)
        except Exception as exc:  # reported through the run, like a failed node
            run.register_error = f"{type(exc).__name__}: {exc}"
        finally:
            run.done.set()

    def _run_gate(self, run: GateRun, call: dict[str, Any], item: tuple[int, str] | None,
                  hold: threading.Event | None) -> None:
        workflow = run.workflow
        outer = self._globals(workflow) | ({"item": item[1]} if item else {})
        wrapper = self._template(workflow, call["template"])
        scope = self._globals(workflow) | {"node.name": run.node_name}
        scope |= {f"inputs.parameters.{k}": v
                  for k, v in self._inputs(wrapper, self._args(call, outer)).items()}
        (register_call,), (wait_call,), *rest = wrapper["steps"]
        if len(rest) > 1 or (rest and len(rest[0]) != 1):
            raise ControllerError(f"template {wrapper['name']}: expected register, wait and "
                                  f"at most one verify step, got {wrapper['steps']}")
        register = self._template(workflow, register_call["template"])
        reg_name = f"{run.node_name}[0].{register_call['name']}"
        reg_scope = self._globals(workflow) | {"node.name": reg_name} | {
            f"inputs.parameters.{k}": v
            for k, v in self._inputs(register, self._args(register_call, scope)).items()}
        run.register_result = self._register(workflow, register, reg_scope, reg_name)
        scope[f"steps.{register_call['name']}.outputs.result"] = run.register_result
        run.registered.set()
        if hold is not None:
            hold.wait(60)
        wait = self._template(workflow, wait_call["template"])
        inputs = self._inputs(wait, self._args(wait_call, scope))
        node = self.server.add_node(workflow, {
            "name": f"{run.node_name}[1].{wait_call['name']}", "displayName": wait_call["name"],
            "type": "Suspend", "templateName": wait["name"], "phase": "Running",
            "inputs": {"parameters": [{**p, "value": inputs[p["name"]]}
                                      for p in wait["inputs"]["parameters"]]},
            "outputs": json.loads(json.dumps(wait.get("outputs"))),
        })
        run.wait_node_id = node["id"]
        duration = (wait.get("suspend") or {}).get("duration")
        if duration:
            threading.Timer(_seconds(duration), self._expire, (workflow, node["id"])).start()
        if rest:
            threading.Thread(target=self._verify, args=(run, rest[0][0], scope,
                                                        wait_call["name"]), daemon=True).start()

    def _verify(self, run: GateRun, call: dict[str, Any], scope: dict[str, str],
                wait_step: str) -> None:
        """Once the suspend node succeeded, run the verify step on its outputs."""
        assert run.wait_node_id is not None
        while True:
            try:
                node = self.server.node(run.workflow, run.wait_node_id)
            except KeyError:
                return  # the workflow was deleted
            if node["phase"] != "Running":
                break
            time.sleep(0.1)
        if node["phase"] != "Succeeded":
            return  # a failed step: Argo runs nothing after it
        scope = scope | {f"steps.{wait_step}.outputs.parameters.{p['name']}": _output(p)
                         for p in node["outputs"]["parameters"]}
        template = self._template(run.workflow, call["template"])
        inputs = self._inputs(template, self._args(call, scope))
        step_scope = self._globals(run.workflow) | {
            f"inputs.parameters.{k}": v for k, v in inputs.items()}
        began = time.monotonic()
        try:
            output, phase = self._execute(run.workflow, template, step_scope), "Succeeded"
        except _NodeFailed as failed:
            output, phase = str(failed), "Failed"
        except Exception as exc:  # the fake cannot run it: say so through the node
            output, phase = f"{type(exc).__name__}: {exc}", "Error"
        checked = self.server.add_node(run.workflow, {
            "name": f"{run.node_name}[2].{call['name']}", "displayName": call["name"],
            "type": "Pod", "templateName": template["name"], "phase": phase,
            "message": output[-2000:], "finishedAt": now()})
        run.verify_node_id = checked["id"]
        run.verify_seconds = time.monotonic() - began
        run.checked.set()

    def _expire(self, workflow: dict[str, Any], node_id: str) -> None:
        def change(node: dict[str, Any]) -> None:
            if node["phase"] == "Running":
                apply_defaults(node)
                node.update(phase="Succeeded", finishedAt=now())
        self.server.update_node(workflow, node_id, change)

    def _register(self, workflow: dict[str, Any], template: dict[str, Any],
                  scope: dict[str, str], node_name: str) -> str:
        retry = template.get("retryStrategy") or {}
        attempts = int(retry.get("limit", 0)) + 1
        backoff = retry.get("backoff") or {}
        delay = _seconds(backoff.get("duration", "1")) * self.retry_scale
        errors = []
        for attempt in range(attempts):
            attempt_scope = scope | {"node.name": f"{node_name}({attempt})"} if retry else scope
            try:
                return self._execute(workflow, template, attempt_scope)
            except _NodeFailed as exc:
                errors.append(str(exc))
                time.sleep(delay)
                delay *= float(backoff.get("factor", 1))
        raise ControllerError(f"register failed {attempts} times: {errors}")

    def _execute(self, workflow: dict[str, Any], template: dict[str, Any],
                 scope: dict[str, str]) -> str:
        namespace = workflow["metadata"]["namespace"]
        if "http" in template:
            return self._http(namespace, template["http"], scope)
        if "script" in template or "container" in template:
            return self._pod(workflow, template, scope)
        raise ControllerError(f"template {template['name']}: neither http, script nor "
                              "container")

    def _secret(self, namespace: str, ref: dict[str, str]) -> str:
        secret = self.server.secrets.get((namespace, ref["name"]))
        if secret is None or ref["key"] not in secret:
            raise _NodeFailed(f'secrets "{ref["name"]}" not found (or no key {ref["key"]})')
        return secret[ref["key"]]

    def _http(self, namespace: str, http: dict[str, Any], scope: dict[str, str]) -> str:
        url = _resolved(substitute(http["url"], scope), "url")
        body = _resolved(substitute(http.get("body", ""), scope), "body")
        headers = {}
        for header in http.get("headers") or []:
            ref = (header.get("valueFrom") or {}).get("secretKeyRef")
            headers[header["name"]] = self._secret(namespace, ref) if ref else header["value"]
        try:
            answer = self._client.request(http.get("method", "GET"), url, content=body.encode(),
                                        headers=headers, timeout=http.get("timeoutSeconds", 30))
        except httpx.HTTPError as exc:
            raise _NodeFailed(f"{type(exc).__name__}: {exc}") from exc
        condition = http.get("successCondition")
        response = {"statusCode": answer.status_code, "body": answer.text,
                    "headers": dict(answer.headers)}
        ok = (evaluate(condition, {"response": response}) if condition
              else 200 <= answer.status_code < 300)
        if not ok:
            raise _NodeFailed(f"successCondition '{condition}' evaluated false: "
                              f"{answer.status_code} {answer.text[:300]}")
        return answer.text

    def _pod(self, workflow: dict[str, Any], template: dict[str, Any],
             scope: dict[str, str]) -> str:
        """Run a script or container template's command as Argo's pod would (see the module
        docstring for what stands in for the image and the volumes)."""
        namespace = workflow["metadata"]["namespace"]
        body = template.get("script") or template["container"]
        with tempfile.TemporaryDirectory() as root:
            mounts = self._mounts(workflow, template, body, Path(root))

            def resolved(text: str, where: str) -> str:
                text = _resolved(substitute(text, scope), where)
                for mount_path, local in mounts.items():
                    text = text.replace(mount_path, local)
                return text

            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            for var in body.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                env[var["name"]] = (self._secret(namespace, ref) if ref
                                    else resolved(var["value"], f"env {var['name']}"))
            command = [resolved(part, "command") for part in body["command"]]
            command += [resolved(part, "args") for part in body.get("args") or []]
            if command[0] == "signoff":  # the image's signoff: this environment's
                command[0] = str(Path(sys.executable).parent / "signoff")
            elif shutil.which(command[0]) is None:
                raise ControllerError(f"command {command[0]!r} is not available here")
            if "script" in template:
                script = Path(root) / "script"
                script.write_text(resolved(body["source"], "source"))
                command.append(str(script))
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        if done.returncode != 0:
            raise _NodeFailed(f"exit {done.returncode}: {done.stderr[-1000:]} "
                              f"{done.stdout[-300:]}")
        return done.stdout.strip()

    def _mounts(self, workflow: dict[str, Any], template: dict[str, Any],
                body: dict[str, Any], root: Path) -> dict[str, str]:
        """Mount path -> a local directory holding the volume's files (projected
        service-account tokens only, the one volume a gate uses)."""
        volumes = {v["name"]: v for v in template.get("volumes") or []}
        mounts = {}
        for mount in body.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise ControllerError(f"volumeMount {mount['name']!r}: no such volume")
            local = root / mount["name"]
            local.mkdir()
            for source in (volume.get("projected") or {}).get("sources") or []:
                token = source.get("serviceAccountToken")
                if token is None:
                    raise ControllerError(f"volume {mount['name']!r}: the fake projects only "
                                          f"service-account tokens, got {source}")
                if self.service_account_token is None:
                    raise _NodeFailed("no token issuer for projected service-account tokens")
                account = workflow["spec"].get("serviceAccountName", "default")
                (local / token["path"]).write_text(self.service_account_token(
                    workflow["metadata"]["namespace"], account, token["audience"],
                    int(token.get("expirationSeconds", 3600))))
            mounts[mount["mountPath"]] = str(local)
        return mounts


class _NodeFailed(Exception):
    """One attempt of a node failed; the retry strategy decides what follows."""


def _resolved(text: str, where: str) -> str:
    if re.search(r"\{\{.*?\}\}", text, re.DOTALL):
        raise ControllerError(f"{where}: unresolved tag left in {text[:200]!r}")
    return text


def _seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", str(duration))
    if found is None:
        raise ControllerError(f"duration {duration!r}: the fake reads N, Ns, Nm or Nh")
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[found.group(2)]


def _output(param: dict[str, Any]) -> str:
    """An output's value; one never supplied takes its default when the node completes."""
    if "value" in param:
        return str(param["value"])
    return str((param.get("valueFrom") or {}).get("default", ""))
