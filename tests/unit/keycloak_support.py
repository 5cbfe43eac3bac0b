"""A recorded python-keycloak connection for RealmAdmin's unit tests (no Keycloak): the
raw_* calls it makes, answered in order."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import requests

from educloud.clients.keycloak import RealmAdmin


def _response(status: int, body: Any = None, *, raw: bytes | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (
        raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    )
    return response


class RecordedConnection:
    """python-keycloak's connection as RealmAdmin uses it: raw_* calls, answered in order."""

    server_url = "https://auth-admin.example.test"

    def __init__(self, *answers: requests.Response | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def _answer(self, method: str, url: str, **params: Any) -> requests.Response:
        self.calls.append((method, url, params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def raw_get(self, url: str, **params: Any) -> requests.Response:
        return self._answer("GET", url, **params)

    def raw_post(self, url: str, data: str, **params: Any) -> requests.Response:
        return self._answer("POST", url, data=data, **params)

    def raw_put(self, url: str, data: str, **params: Any) -> requests.Response:
        return self._answer("PUT", url, data=data, **params)

    def raw_delete(self, url: str, **params: Any) -> requests.Response:
        return self._answer("DELETE", url, **params)


def _realm(*answers: requests.Response | Exception, cls: type[RealmAdmin] = RealmAdmin) -> Any:
    connection = RecordedConnection(*answers)
    return cls(SimpleNamespace(connection=connection), "lab"), connection  # type: ignore[arg-type]
