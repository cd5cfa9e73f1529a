"""What Airflow's providers manager reads about signoff (the ``apache_airflow_provider`` entry point).

Airflow calls :func:`get_provider_info` in every process that lists providers, so this module
imports nothing: the connection form of the ``signoff`` type is described here as data, and the
hook, sensor and trigger modules are named, not loaded.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]

_INTEGRATION = "signoff"


def get_provider_info() -> dict[str, Any]:
    """The provider description: the sensors, the trigger, the hook and the ``signoff`` connection type."""
    from signoff import __version__

    def modules(name: str) -> list[dict[str, Any]]:
        return [{"integration-name": _INTEGRATION,
                 "python-modules": [f"signoff.adapters.airflow.{name}"]}]

    return {
        "package-name": "signoff",
        "name": "signoff",
        "description": "Human approval and human input steps, answered in signoff's shared inbox.",
        "versions": [__version__],
        "integrations": [{
            "integration-name": _INTEGRATION,
            "external-doc-url": "https://pypi.org/project/signoff/",
            "tags": ["service"],
        }],
        "sensors": modules("sensors"),
        "hooks": modules("hook"),
        "triggers": modules("triggers"),
        "connection-types": [{
            "connection-type": "signoff",
            "hook-class-name": "signoff.adapters.airflow.hook.SignoffHook",
            "hook-name": "signoff hub",
            "ui-field-behaviour": {
                "hidden-fields": ["login", "schema"],
                "relabeling": {"host": "Hub URL", "password": "API token"},
                "placeholders": {
                    "host": "https://signoff.example.com",
                    "password": "a workflow token: signoff token create --role workflow",
                    "extra": '{"scheme": "https"}',
                },
            },
        }],
    }
