"""A small client of Airflow 3.3's REST API v2, for the HITL bridge: log in, list, read, answer.

Routes, as ``airflow/api_fastapi/core_api/routes/public/hitl.py`` and the simple auth manager's
``routes/login.py`` define them:

- ``POST /auth/token`` ``{"username", "password"}`` → 201 ``{"access_token"}`` (a JWT);
- ``GET /api/v2/dags/~/dagRuns/~/hitlDetails`` with ``response_received=false``, ``state``
  (the task instance's, repeatable), ``dag_id_prefix_pattern``, ``order_by``, ``limit``,
  ``offset`` → ``{"hitl_details": [...], "total_entries"}``;
- ``GET`` and ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails``,
  the latter with ``{"chosen_options": [...], "params_input": {...}}`` (409 once answered,
  400 for an option it does not offer, 403 for a user not among the assigned ones).

Every call goes through the hub's egress guard, within the deployment's ``timeout``, and a 401
logs in again once. Failures are :class:`AirflowFailed` with a short reason that never quotes
Airflow's answer body (it may echo request data) beyond its ``detail`` string.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from anyio import to_thread
from pydantic import ValidationError

from ..._egress import EgressGuard, EgressRefused, origin_of
from .airflow_config import AirflowDeployment
from .airflow_mapping import HitlDetail, HitlPage

__all__ = ["AirflowApi", "AirflowFailed"]

_PAGE = 100
_WAITING = ("awaiting_input", "deferred")
"""Task states in which an action still waits for its answer (``deferred``: Airflow < 3.3's
``HITLTrigger``, still listed for deployments that run older task instances)."""


class AirflowFailed(Exception):
    """A call to Airflow failed; ``status`` is Airflow's HTTP status (``None``: no answer) and
    ``retry`` whether trying again later may help.
    """

    def __init__(self, reason: str, *, status: int | None = None, retry: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.retry = retry


def _read_secret(path: Any) -> str:
    try:
        text: str = path.read_text().strip()
    except OSError as exc:
        raise AirflowFailed(f"{path}: {exc.strerror or exc}", retry=True) from exc
    if not text:
        raise AirflowFailed(f"{path}: the file is empty", retry=True)
    return text


class AirflowApi:
    """One deployment's REST API, with one HTTP client for the hub's life."""

    def __init__(self, name: str, config: AirflowDeployment, egress: EgressGuard) -> None:
        self.name = name
        self.config = config
        self.base = config.url.rstrip("/")
        self.where = origin_of(self.base)
        self._client = egress.client(timeout=config.timeout,
                                     headers={"Accept": "application/json"})
        self._jwt: str | None = None
        self._login = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    # credentials -------------------------------------------------------------------------
    async def _fresh_token(self) -> str:
        config = self.config
        if config.token is not None:
            return config.token.get_secret_value()
        if config.token_file is not None:
            return await to_thread.run_sync(_read_secret, config.token_file)
        password = (config.password.get_secret_value() if config.password is not None
                    else await to_thread.run_sync(_read_secret, config.password_file))
        answer = await self._send("POST", "/auth/token",
                                  json={"username": config.username, "password": password})
        if answer.status_code not in (200, 201):
            raise AirflowFailed(f"{self.where}: logging in as {config.username!r} was "
                                f"refused ({answer.status_code})", status=answer.status_code,
                                retry=answer.status_code >= 500)
        try:
            token = answer.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AirflowFailed(f"{self.where}: /auth/token answered without access_token"
                                ) from exc
        if not isinstance(token, str) or not token:
            raise AirflowFailed(f"{self.where}: /auth/token answered without access_token")
        return token

    async def _token(self, stale: str | None) -> str:
        async with self._login:  # one login at a time; the others use its token
            if self._jwt is None or self._jwt == stale:
                self._jwt = await self._fresh_token()
            return self._jwt

    # calls -------------------------------------------------------------------------------
    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, self.base + path, **kwargs)
        except EgressRefused as exc:
            raise AirflowFailed(f"{self.where}: {exc}", retry=False) from exc
        except httpx.HTTPError as exc:  # the class only: a message may quote the server
            raise AirflowFailed(f"{self.where}: {type(exc).__name__}") from exc

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated call (``/api/v2`` + ``path``), logging in again once on 401,
        all within the deployment's ``timeout``.
        """
        try:
            with anyio.fail_after(self.config.timeout * 2):  # a login and the call
                token = await self._token(None)
                answer = await self._send(method, "/api/v2" + path, **kwargs,
                                          headers={"Authorization": f"Bearer {token}"})
                if answer.status_code == 401:
                    token = await self._token(token)
                    answer = await self._send(method, "/api/v2" + path, **kwargs,
                                              headers={"Authorization": f"Bearer {token}"})
        except TimeoutError:
            raise AirflowFailed(f"{self.where}: no answer within "
                                f"{self.config.timeout * 2:g} s") from None
        if answer.status_code >= 500 or answer.status_code in (401, 408, 429):
            raise AirflowFailed(f"{self.where} answered {answer.status_code}",
                                status=answer.status_code)
        return answer

    @staticmethod
    def _ti_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        return (f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
                f"/taskInstances/{quote(task_id, safe='')}/{map_index}/hitlDetails")

    def _refused(self, answer: httpx.Response, what: str) -> AirflowFailed:
        try:
            detail = answer.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        said = f": {detail[:300]}" if isinstance(detail, str) else ""
        return AirflowFailed(f"{self.where} refused {what} ({answer.status_code}){said}",
                             status=answer.status_code, retry=False)

    async def pending(self) -> list[HitlDetail]:
        """The actions waiting for an answer, oldest first, at most ``max_actions``."""
        found: list[HitlDetail] = []
        params: dict[str, Any] = {"response_received": "false", "state": list(_WAITING),
                                  "order_by": "created_at", "limit": _PAGE}
        if self.config.dag_id_prefix is not None:
            params["dag_id_prefix_pattern"] = self.config.dag_id_prefix
        while len(found) < self.config.max_actions:
            answer = await self.call("GET", "/dags/~/dagRuns/~/hitlDetails",
                                     params={**params, "offset": len(found)})
            if answer.status_code != 200:
                raise self._refused(answer, "listing the pending actions")
            page = self._parse(HitlPage, answer)
            found.extend(page.hitl_details)
            if len(page.hitl_details) < _PAGE or len(found) >= page.total_entries:
                break
        return found[:self.config.max_actions]

    async def detail(self, dag_id: str, run_id: str, task_id: str,
                     map_index: int) -> HitlDetail | None:
        """One action as Airflow holds it now; ``None`` when the task instance or its action is
        gone (404).
        """
        answer = await self.call("GET", self._ti_path(dag_id, run_id, task_id, map_index))
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise self._refused(answer, "reading an action")
        detail: HitlDetail = self._parse(HitlDetail, answer)
        return detail

    async def answer(self, dag_id: str, run_id: str, task_id: str, map_index: int,
                     chosen_options: list[str], params_input: dict[str, Any]) -> None:
        """Answer an action.

        Raises:
            AirflowFailed: ``status`` 409 when it was answered already; 400, 403, 404 as
                Airflow refused it (``retry`` false).
        """
        answer = await self.call("PATCH", self._ti_path(dag_id, run_id, task_id, map_index),
                                 json={"chosen_options": chosen_options,
                                       "params_input": params_input})
        if answer.status_code != 200:
            raise self._refused(answer, "the answer")

    def _parse(self, model: Any, answer: httpx.Response) -> Any:
        try:
            return model.model_validate_json(answer.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "the body"
            raise AirflowFailed(f"{self.where} answered a {model.__name__} without the "
                                f"expected shape: {field}: {first['msg']}") from exc
