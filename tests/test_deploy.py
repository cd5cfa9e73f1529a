"""The deployment: the Kubernetes manifests against the API's schemas and against the hub they
run, and ``signoff migrate``, which their init container runs.

The manifests are built here (``tests/kustomize.py``: no kustomize binary on these machines) and
validated with ``kubernetes-validate``, which ships the Kubernetes OpenAPI schemas, in strict
mode (an unknown or misspelt field fails).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import tomllib

from signoff._errors import SignoffError
from signoff.hub import load_settings
from signoff.hub.settings import Settings
from signoff.testing import HubProcess

from .kustomize import KustomizeError, build

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZE = ROOT / "deploy" / "kustomize"
FOLDERS = ["base", "overlays/argo", "overlays/argo-ingress", "argo-access"]
HUB_FOLDERS = ["base", "overlays/argo", "overlays/argo-ingress"]
# the oldest Kubernetes the manifests promise (docs/deploy.md) and the newest schemas shipped
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def one(docs: list[dict[str, Any]], kind: str, name: str = "signoff") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(folder: str,
                                                                 version: str) -> None:
    docs = build(KUSTOMIZE / folder)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_catches_a_wrong_type_and_a_misspelt_field() -> None:
    deployment = one(build(KUSTOMIZE / "base"), "Deployment")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment = one(build(KUSTOMIZE / "base"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_builder_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "images:\n  - name: signoff\n    newTag: '2'\n")
    with pytest.raises(KustomizeError, match="images"):
        build(tmp_path)


@pytest.mark.parametrize("folder", HUB_FOLDERS)
def test_the_hub_runs_replicated_probed_and_locked_down(folder: str) -> None:
    docs = build(KUSTOMIZE / folder)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    spec = pod(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (hub,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in hub["ports"]}
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert hub[probe]["httpGet"]["port"] in ports
    # readyz answers within ready_timeout: the probe must wait longer than that
    assert hub["readinessProbe"]["timeoutSeconds"] > Settings().ready_timeout
    assert hub["command"][:2] == ["signoff", "serve"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec["initContainers"], hub]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert container["image"] == hub["image"]
        # a read-only root: whatever writes gets a volume (Python's and uvicorn's temp files)
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    # the service and the disruption budget select exactly these pods
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    budget = one(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1, f"resources spread over namespaces {namespaces}"


@pytest.mark.parametrize("folder", HUB_FOLDERS)
def test_the_database_url_and_audit_key_come_from_secrets_and_migrations_run_first(
        folder: str) -> None:
    spec = pod(build(KUSTOMIZE / folder))
    (migrate,) = spec["initContainers"]
    assert migrate["command"] == ["signoff", "migrate"]
    (hub,) = spec["containers"]
    for container in (migrate, hub):
        env = {e["name"]: e for e in container["env"]}
        for name in ("SIGNOFF_DATABASE", "SIGNOFF_AUDIT_KEY", "SIGNOFF_SIGNING_KEYS"):
            assert "value" not in env[name], f"{name} written into the manifest"
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "signoff"
        assert env == {e["name"]: e for e in hub["env"]}  # the migration sees the hub's store
        # every variable is a setting the hub knows (or the CLI's SIGNOFF_CONFIG)
        for name in env:
            field = name.removeprefix("SIGNOFF_").lower()
            assert field == "config" or field in Settings.model_fields, name


def test_no_secret_is_written_into_any_manifest() -> None:
    for folder in FOLDERS:
        for doc in build(KUSTOMIZE / folder):
            if doc["kind"] == "Secret":  # only one Kubernetes fills in itself
                assert doc["type"] == "kubernetes.io/service-account-token"
                assert "data" not in doc and "stringData" not in doc
            text = str(doc).lower()
            assert "password" not in text and "postgresql://" not in text


@pytest.mark.parametrize("folder", HUB_FOLDERS)
def test_the_config_map_is_a_settings_file_the_hub_accepts(folder: str, tmp_path: Path) -> None:
    docs = build(KUSTOMIZE / folder)
    spec = pod(docs)
    (hub,) = spec["containers"]
    config_path = next(e["value"] for e in hub["env"] if e["name"] == "SIGNOFF_CONFIG")
    mount = next(m for m in hub["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config_map = one(docs, "ConfigMap", volume["configMap"]["name"])
    text = config_map["data"][config_path.rsplit("/", 1)[1]]
    (tmp_path / "signoff.toml").write_text(text)
    settings = load_settings(tmp_path / "signoff.toml")
    assert settings.public_url and settings.public_url.startswith("https://")
    assert settings.secure_cookies
    if folder == "base":
        return
    argo = settings.resumers["argo"]
    assert argo["url"].startswith("https://argo-server.argo.svc.cluster.local:")
    mounted = {m["mountPath"] for m in hub["volumeMounts"]}
    for key in ("token_file", "verify"):
        assert argo[key].rsplit("/", 1)[0] in mounted, f"{key} {argo[key]} is not mounted"
    secret_volume = next(v for v in spec["volumes"] if v["name"] == "argo-resumer")
    assert secret_volume["secret"]["secretName"] == "argo-resumer"


def test_the_argo_access_role_may_only_get_and_update_workflows() -> None:
    docs = build(KUSTOMIZE / "argo-access")
    (rule,) = one(docs, "Role", "signoff-resumer")["rules"]
    assert rule == {"apiGroups": ["argoproj.io"], "resources": ["workflows"],
                    "verbs": ["get", "update"]}
    binding = one(docs, "RoleBinding", "signoff-resumer")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "signoff-resumer",
                                    "namespace": "argo"}]
    secret = one(docs, "Secret", "signoff-resumer.service-account-token")
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == \
        "signoff-resumer"


def _migrate(database: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "migrate", "--db",
         str(database)], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in {**os.environ, **env}.items() if not k.startswith("SIGNOFF_")
             or k in env})


def test_migrate_brings_an_old_store_to_the_current_schema_and_exits(tmp_path: Path) -> None:
    from signoff.store.sqlite import _MIGRATIONS

    database = tmp_path / "old.db"
    conn = sqlite3.connect(database)  # a store as the release before the newest migration left it
    for script in _MIGRATIONS[:-1]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {len(_MIGRATIONS) - 1}")
    conn.close()
    done = _migrate(database)
    assert done.returncode == 0, done.stderr
    assert "migrated" in done.stdout
    conn = sqlite3.connect(database)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    conn.close()
    again = _migrate(database)  # a second pod's init container: nothing to do, no error
    assert again.returncode == 0, again.stderr


def test_migrate_refuses_an_audit_key_the_log_was_not_written_with(tmp_path: Path) -> None:
    key = "a" * 64
    database = tmp_path / "hub.db"
    with HubProcess(database, env={"SIGNOFF_AUDIT_KEY": key}) as hub:
        hub.token("rita")  # the log now holds entries keyed with `key`
    assert _migrate(database, SIGNOFF_AUDIT_KEY=key).returncode == 0
    wrong = _migrate(database, SIGNOFF_AUDIT_KEY="b" * 64)
    assert wrong.returncode == 2
    assert "key" in wrong.stderr.lower()


def test_migrate_on_a_database_it_cannot_open_is_a_one_line_error(tmp_path: Path) -> None:
    failed = _migrate(tmp_path / "missing" / "hub.db")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: database: the folder")
    assert not (tmp_path / "missing").exists()


_WITH_PASSWORDS = ["postgresql://signoff:s3cret@db.example:5432/signoff",
                   "postgres://signoff:s3cret@db.example/signoff",
                   "postgresql://signoff@db.example/signoff?sslmode=require&password=s3cret",
                   "postgresql://signoff@db.example/signoff?PASSWORD=s3cret",
                   # libpq decodes a parameter's name: this is password= too
                   "postgresql://signoff@db.example/signoff?pass%77ord=s3cret&sslmode=require"]


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["token", "list"],
                                     ["audit", "verify"], ["keys"]])
@pytest.mark.parametrize("url", _WITH_PASSWORDS)
def test_a_database_password_on_the_command_line_is_refused(command: list[str],
                                                            url: str) -> None:
    """A command line is visible to every user of the machine: --db refuses a URL that
    carries its password, names the option and shows the URL with the password masked. The
    refusal comes before anything runs, so the commands run in this process."""
    from click.testing import CliRunner

    from signoff.cli import main

    refused = CliRunner().invoke(main, [*command, "--db", url],
                                 env={k: None for k in os.environ if k.startswith("SIGNOFF_")})
    assert refused.exit_code == 2, refused.output
    assert "'--db'" in refused.stderr and "without its password" in refused.stderr
    assert "PGPASSWORD" in refused.stderr and "SIGNOFF_DB" in refused.stderr
    assert "s3cret" not in refused.stderr + refused.stdout
    assert "***" in refused.stderr


def test_a_database_url_without_a_password_is_taken_as_given() -> None:
    from signoff.store import has_password, shown

    plain = "postgresql://signoff@db.example:5432/signoff?sslmode=require"
    assert not has_password(plain) and shown(plain) == plain
    assert not has_password("/var/lib/signoff/signoff.db")
    assert [shown(url).count("***") for url in _WITH_PASSWORDS] == [1] * len(_WITH_PASSWORDS)
    assert shown(_WITH_PASSWORDS[-1]).endswith("?pass%77ord=***&sslmode=require")


def test_the_database_url_loses_the_newline_its_variable_carries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SIGNOFF_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SIGNOFF_DATABASE", "postgresql://signoff@db.example/signoff\n")
    assert load_settings().database == "postgresql://signoff@db.example/signoff"


def test_a_complex_setting_that_is_not_json_is_a_one_line_error(tmp_path: Path) -> None:
    failed = _migrate(tmp_path / "hub.db", SIGNOFF_RESUMERS="{")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: settings:"), failed.stderr
    assert '"resumers"' in failed.stderr and "expected JSON" in failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.splitlines()) == 1


def test_signoff_db_names_the_database_below_arguments_above_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SIGNOFF_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "hub.toml"
    config.write_text('database = "/from/the/file.db"\n')
    assert load_settings(config).database == "/from/the/file.db"
    monkeypatch.setenv("SIGNOFF_DB", "postgresql://signoff@db.example/signoff")
    assert load_settings(config).database == "postgresql://signoff@db.example/signoff"
    assert load_settings(config, database="/from/argv.db").database == "/from/argv.db"
    monkeypatch.setenv("SIGNOFF_DATABASE", "postgresql://signoff@db.example/signoff")
    assert load_settings(config).database == "postgresql://signoff@db.example/signoff"
    monkeypatch.setenv("SIGNOFF_DATABASE", "/another.db")
    with pytest.raises(SignoffError, match="SIGNOFF_DB and SIGNOFF_DATABASE"):
        load_settings(config)


def test_signoff_database_file_names_the_database_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SIGNOFF_")]:
        monkeypatch.delenv(name)
    url = "postgresql://signoff:s3cret@db.example:5432/signoff"
    secret = tmp_path / "database-url"
    secret.write_text(url + "\n")
    monkeypatch.setenv("SIGNOFF_DATABASE_FILE", str(secret))
    assert load_settings().database == url
    with pytest.raises(SignoffError, match="database_file: expected it alone"):
        load_settings(database="/from/argv.db")
    monkeypatch.setenv("SIGNOFF_DB", "/from/env.db")
    with pytest.raises(SignoffError, match="database_file: expected it alone"):
        load_settings()


@pytest.mark.parametrize(("content", "why"), [
    (None, "no such file"), ("", "empty"), ("  \n", "empty"),
    ("postgresql://signoff:s3cret@a/b\npostgresql://signoff:s3cret@c/d", "several lines"),
    ("postgresql://signoff:s3cret@a/b" + "x" * 5000, "bytes"),
    (b"postgresql://signoff:s3cret@a/\xff", "not UTF-8")])
def test_a_database_file_that_cannot_be_the_url_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes | None,
        why: str) -> None:
    for name in [k for k in os.environ if k.startswith("SIGNOFF_")]:
        monkeypatch.delenv(name)
    secret = tmp_path / "database-url"
    if isinstance(content, bytes):
        secret.write_bytes(content)
    elif content is not None:
        secret.write_text(content)
    monkeypatch.setenv("SIGNOFF_DATABASE_FILE", str(secret))
    with pytest.raises(SignoffError) as refused:
        load_settings()
    message = str(refused.value)
    assert message.startswith("settings: database_file: expected")
    assert str(secret) in message and why in message
    assert "s3cret" not in message  # the file's text is never shown


def test_migrate_opens_the_database_signoff_db_names(tmp_path: Path) -> None:
    database = tmp_path / "named-by-env.db"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    made = subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "migrate"], cwd=elsewhere,
        capture_output=True, text=True, timeout=60, env={**env, "SIGNOFF_DB": str(database)})
    assert made.returncode == 0, made.stderr
    assert database.is_file() and list(elsewhere.iterdir()) == []  # not ./signoff.db


def test_the_kustomizations_are_all_tested() -> None:
    found = sorted(str(p.parent.relative_to(KUSTOMIZE))
                   for p in KUSTOMIZE.rglob("kustomization.yaml"))
    assert found == sorted(FOLDERS)


def test_the_manifests_run_the_image_the_dockerfile_builds() -> None:
    from .test_dockerfile import final_stage

    stage = final_stage()
    uid = int(stage["USER"][-1].split(":")[0])
    env = stage["ENV"]
    spec = pod(build(KUSTOMIZE / "base"))
    assert spec["securityContext"]["runAsUser"] == uid
    (hub,) = spec["containers"]
    assert [p["containerPort"] for p in hub["ports"]] == [int(env["SIGNOFF_PORT"])]
    assert stage["EXPOSE"] == [env["SIGNOFF_PORT"]]



DOCS = ROOT / "docs" / "deploy.md"


def test_the_deploy_page_names_what_the_manifests_hold() -> None:
    text = DOCS.read_text()
    for applied in re.findall(r"kubectl apply -k (deploy/kustomize/\S+)", text):
        assert applied.removeprefix("deploy/kustomize/") in FOLDERS, applied
    for named in re.findall(r"(?:\.\./signoff/)?deploy/kustomize/([\w/-]+)", text):
        assert (KUSTOMIZE / named).is_dir(), named
    spec = pod(build(KUSTOMIZE / "overlays/argo"))
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in spec["containers"][0]["env"]
            if "valueFrom" in e}
    assert keys == {"database-url", "audit-key", "signing-keys"}
    for key in keys:
        assert f"--from-file={key}=" in text
    secret = next(v for v in spec["volumes"] if "secret" in v)["secret"]["secretName"]
    assert f"create secret generic {secret}" in text
    assert "`ready_timeout` (2 s)" in text and Settings().ready_timeout == 2
    assert "(`ready_retry_after`, 5 s)" in text and Settings().ready_retry_after == 5


def test_the_hub_url_in_the_docs_is_the_service_the_overlay_makes() -> None:
    docs = build(KUSTOMIZE / "overlays/argo")
    service = one(docs, "Service")
    url = (f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:"
           f"{service['spec']['ports'][0]['port']}")
    assert url in DOCS.read_text()
    assert url in (ROOT / "docs" / "argo.md").read_text()


def test_the_resumer_settings_on_the_page_are_the_overlays() -> None:
    blocks = re.findall(r"```toml\n(\[resumers\.argo\].*?)```", DOCS.read_text(), re.S)
    (block,) = blocks
    shown = tomllib.loads(block)["resumers"]["argo"]
    config = one(build(KUSTOMIZE / "overlays/argo"), "ConfigMap", "signoff-config")
    assert tomllib.loads(config["data"]["signoff.toml"])["resumers"]["argo"] == shown


def test_the_argo_resumer_is_not_behind_egress_allow_as_the_page_says() -> None:
    # docs/deploy.md: the Argo resumer's url is operator configuration, not checked against
    # egress_allow (only the built-in resumers get the hub's egress guard). If that changes,
    # the page must say which egress_allow entry the Argo Server needs.
    from signoff.resumers import BUILTIN

    assert "argo" not in BUILTIN
    assert "needs no `egress_allow` entry" in DOCS.read_text()


def test_the_commands_the_page_runs_exist() -> None:
    from click.testing import CliRunner

    from signoff.cli import main

    text = DOCS.read_text()
    assert "signoff token create --user alice --role admin --login-link" in text
    assert CliRunner().invoke(main, ["migrate", "--help"]).exit_code == 0
    help_text = CliRunner().invoke(main, ["token", "create", "--help"]).output
    assert "--login-link" in help_text and "--role" in help_text
