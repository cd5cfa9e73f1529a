"""The package around the sensors: imports, the provider entry point, the hook, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .harness import ROOT


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_import_signoff_loads_no_airflow() -> None:
    done = _python("import sys, signoff; print(sorted(m for m in sys.modules "
                   "if m.split('.')[0] in ('airflow', 'sqlalchemy', 'fastapi')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_trigger_module_does_not_load_the_sensors() -> None:
    done = _python("import sys, signoff.adapters.airflow.triggers as t; "
                   "print('signoff.adapters.airflow.sensors' in sys.modules, t.CLASSPATH)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "signoff.adapters.airflow.triggers.SignoffTrigger"]


def test_missing_airflow_names_the_extra() -> None:
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name == 'airflow' or name.startswith('airflow.'):\n"
               "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "try:\n"
               "    import signoff.adapters.airflow\n"
               "except ImportError as exc:\n"
               "    print(type(exc).__name__, issubclass(type(exc), ImportError), exc)\n")
    done = _python(blocker)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingExtra True ")
    assert "pip install 'signoff[airflow]'" in done.stdout


def test_airflow_lists_signoff_as_a_provider_with_its_connection_type(
        airflow_home: tuple[Path, dict[str, str]]) -> None:
    _, env = airflow_home
    code = (
        "import json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "pm = ProvidersManager()\n"
        "info = pm.providers['signoff']\n"
        "hook = pm.hooks['signoff']\n"
        "print(json.dumps({'version': info.version, 'name': info.data['name'],\n"
        "  'hook': hook.hook_class_name, 'conn_type': hook.connection_type,\n"
        "  'hook_name': hook.hook_name, 'behaviour': pm.field_behaviours.get('signoff'),\n"
        "  'triggers': [t.trigger_class_name for t in pm.trigger if 'signoff' in\n"
        "               t.trigger_class_name]}))\n")
    done = _python(code, env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    import signoff

    assert found["version"] == signoff.__version__ and found["name"] == "signoff"
    assert found["hook"] == "signoff.adapters.airflow.hook.SignoffHook"
    assert (found["conn_type"], found["hook_name"]) == ("signoff", "signoff hub")
    assert found["behaviour"]["hidden_fields"] == ["login", "schema"]
    assert found["behaviour"]["relabeling"] == {"host": "Hub URL", "password": "API token"}
    assert found["triggers"] == ["signoff.adapters.airflow.triggers"]


def test_provider_info_matches_airflows_schema() -> None:
    import jsonschema
    from airflow import __file__ as airflow_init

    from signoff.adapters.airflow.provider import get_provider_info

    schema = json.loads((Path(airflow_init).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


@pytest.mark.parametrize(("host", "port", "scheme", "url"), [
    ("https://hub.example.com/", None, None, "https://hub.example.com"),
    ("https://hub.example.com/signoff", None, None, "https://hub.example.com/signoff"),
    ("127.0.0.1", 8765, None, "http://127.0.0.1:8765"),
    ("hub.internal", 443, "https", "https://hub.internal:443"),
    ("http://127.0.0.1:9000", 8765, None, "http://127.0.0.1:9000"),
])
def test_hub_url_from_connection_fields(host: str, port: int | None, scheme: str | None,
                                        url: str) -> None:
    from signoff.adapters.airflow.hook import hub_url

    assert hub_url(host, port, scheme) == url


@pytest.mark.parametrize(("host", "message"), [
    (None, "has no host: expected the hub URL"),
    ("ftp://hub", "must be an http(s) URL, got 'ftp://hub'"),
])
def test_hub_url_refuses_what_is_not_a_hub(host: str | None, message: str) -> None:
    from signoff.adapters.airflow.hook import hub_url

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hub_url(host, None)


def test_hook_reads_the_connection_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from signoff.adapters.airflow.hook import SignoffHook

    monkeypatch.setenv("AIRFLOW_CONN_SIGNOFF_DEFAULT",
                       json.dumps({"conn_type": "signoff", "host": "hub.local", "port": 8765,
                                   "password": "tok", "extra": {"scheme": "https"}}))
    creds = SignoffHook().credentials()
    assert (creds.url, creds.token, creds.origin, creds.token_env) == \
        ("https://hub.local:8765", "tok", "connection 'signoff_default'", None)
    assert "tok" not in repr(creds)
    monkeypatch.setenv("SIGNOFF_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("SIGNOFF_TOKEN", "envtok")
    creds = SignoffHook("signoff_other").credentials()
    assert (creds.url, creds.token, creds.origin, creds.token_env) == \
        ("http://127.0.0.1:9", "envtok", "environment", "SIGNOFF_TOKEN")
    from airflow.sdk.exceptions import AirflowFailException

    from signoff import HubNotConfigured

    with pytest.raises(AirflowFailException, match="connection 'signoff_other' is not defined; "
                                                   "create it with `airflow connections add "
                                                   "signoff_other ") as refused:
        SignoffHook("signoff_other", env_fallback=False).credentials()
    assert isinstance(refused.value, HubNotConfigured)
    assert "AIRFLOW_CONN_SIGNOFF_OTHER=" in str(refused.value)
    assert "SIGNOFF_URL" not in str(refused.value)  # the environment is not read here


def _sensor(cls_name: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    import signoff.adapters.airflow as adapter

    with DAG("d", schedule=None):
        return getattr(adapter, cls_name)(task_id="t", prompt="p?", **kwargs)


@pytest.mark.parametrize(("cls_name", "kwargs", "message"), [
    ("ApprovalSensor", {"on_reject": "maybe"}, "on_reject: expected 'skip' or 'fail', got 'maybe'"),
    ("ApprovalSensor", {"input": int}, "input: an ApprovalSensor always asks approve/reject"),
    ("ApprovalSensor", {"on_timeout": "default"}, "on_timeout='default' needs a default"),
    ("ApprovalSensor", {"timeout": -1}, "timeout: expected a positive duration, got -1"),
    ("ApprovalSensor", {"on_timeout": "later"}, "on_timeout: expected 'reject', 'default' or "
                                                "'fail', got 'later'"),
    ("ApprovalSensor", {"trigger_token": "file"},
     "trigger_token: expected 'connection', 'env' or 'kwargs', got 'file'"),
    ("InputSensor", {"input": object}, "input: input: expected bool, int, float, str"),
    ("InputSensor", {"input": {"kind": "int", "min": 5, "max": 1}}, "input: "),
    ("BranchSensor", {"options": []}, "options: expected at least one task id, got none"),
    ("BranchSensor", {"options": ["a", "b"], "default": "c"},
     "options/default: default 'c' is not one of the options"),
])
def test_bad_arguments_fail_when_the_dag_is_parsed(cls_name: str, kwargs: dict[str, Any],
                                                   message: str) -> None:
    with pytest.raises(ValueError) as caught:
        _sensor(cls_name, **kwargs)
    assert message in str(caught.value)


def test_sensor_arguments_become_the_event() -> None:
    sensor = _sensor("InputSensor", input={"kind": "int", "default": 3}, on_timeout="default",
                     timeout=timedelta(minutes=5), assignees=["alice", "group:ops"])
    assert sensor.input_spec.kind == "int" and sensor.input_spec.default == 3
    assert sensor.response_timeout == timedelta(minutes=5)
    assert sensor.timeout == 300  # Airflow's own sensor timeout agrees
    assert set(sensor.template_fields) == {"prompt", "context", "assignees", "labels",
                                           "recommendation"}
    branch = _sensor("BranchSensor", options={"Ship": "ship", "Both": ["a", "b"]},
                     multiple=True, default=["Ship"], on_timeout="default")
    assert branch.input_spec.kind == "multichoice" and branch.input_spec.default == ["Ship"]
