"""What a hostile or careless client sends to /graphql/ over real HTTP (httpx → uvicorn →
the ASGI app): malformed bodies get a JSON 4xx, never a 500; client errors are logged as
warnings without a traceback and server errors as errors with one, both naming the token's
user; and a static path climbing out of the static folders is a 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.db import connection

from tests.conftest import JsonLines
from tests.graphql_support import api_token, make_user
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)

TYPENAME = b'{"query": "{ __typename }"'


@pytest.fixture
def token_user() -> Any:
    return make_user("dashboard", staff=True)


@pytest.fixture
def auth(token_user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(token_user.username)}"}


def _deeply_nested(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"null", "application/json", 400, "Expected a JSON object"),
        (b"42", "application/json", 400, "Expected a JSON object"),
        (b'"x"', "application/json", 400, "Expected a JSON object"),
        (b"true", "application/json", 400, "Expected a JSON object"),
        (b"[]", "application/json", 400, "Batching is not enabled"),
        (b"\xff", "application/json", 400, "not valid JSON"),
        (b'{"query": "\xff"}', "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "not valid JSON"),
        (b"{", "application/json", 400, "not valid JSON"),
        (
            TYPENAME + b', "variables": ' + _deeply_nested(5000) + b"}",
            "application/json",
            400,
            "not valid JSON",
        ),
        (TYPENAME + b', "variables": 42}', "application/json", 400, "`variables` must be"),
        (TYPENAME + b', "variables": [1]}', "application/json", 400, "`variables` must be"),
        (TYPENAME + b', "extensions": "x"}', "application/json", 400, "`extensions` must be"),
        (b'{"query": 5}', "application/json", 400, "`query` must be"),
        (b'{"query": {"a": 1}}', "application/json", 400, "`query` must be"),
        (b"{}", "application/json", 400, "No GraphQL query"),
        (TYPENAME + b"}", "text/plain", 400, "Unsupported content type"),
        (b"query=%7B__typename%7D", "application/x-www-form-urlencoded", 400, "Unsupported"),
        (TYPENAME + b"}", "", 400, "Unsupported content type"),
        (b"x" * 3_000_000, "application/json", 413, "too large"),
    ],
)
def test_a_malformed_body_is_a_json_4xx_logged_without_a_traceback(
    http: httpx.Client,
    auth: dict[str, str],
    json_lines: JsonLines,
    body: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    headers = {**auth, "Content-Type": content_type} if content_type else auth
    response = http.post("/graphql/", content=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert words in response.json()["errors"][0]["message"]
    assert "data" not in response.json()
    assert not [line for line in json_lines.lines if line["level"] in ("ERROR", "CRITICAL")]
    assert not [line for line in json_lines.lines if "exc_info" in line]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"query": "{ __typename }", "variables": "{"}, 400, "not valid JSON"),
        ({"query": "{ __typename }", "variables": "5"}, 400, "Expected a JSON object"),
        ({"query": "{ __typename }", "extensions": "[1]"}, 400, "`extensions` must be"),
        ({"variables": "{}"}, 400, "No GraphQL query"),
        ({"query": "mutation { __typename }"}, 400, "mutations are not allowed when using GET"),
    ],
)
def test_a_malformed_get_is_a_json_4xx(
    http: httpx.Client, auth: dict[str, str], params: dict[str, str], status: int, words: str
) -> None:
    response = http.get("/graphql/", params=params, headers={**auth, "Accept": "application/json"})

    assert response.status_code == status, response.text
    assert words in response.json()["errors"][0]["message"]


def test_other_methods_are_a_json_405(http: httpx.Client, auth: dict[str, str]) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        response = http.request(method, "/graphql/", headers=auth, json={"query": "{ a }"})
        assert response.status_code == 405, (method, response.text)
        assert "GET and POST" in response.json()["errors"][0]["message"]


def test_an_operation_name_of_the_wrong_type_is_an_error_not_a_500(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    response = http.post(
        "/graphql/", json={"query": "query A { __typename }", "operationName": 5}, headers=auth
    )

    assert response.status_code in (200, 400), response.text
    assert response.json()["errors"]


def test_client_errors_are_warnings_without_traceback_naming_the_token_user(
    http: httpx.Client, auth: dict[str, str], token_user: Any, json_lines: JsonLines
) -> None:
    for query in ('{ traces(after: "garbage") { totalCount } }', '{ trace(id: "nothex") { id } }'):
        response = http.post("/graphql/", json={"query": query}, headers=auth)
        assert response.status_code == 200 and response.json()["errors"], response.text

    lines = json_lines.messages("graphql_api.schema")
    assert [line["level"] for line in lines] == ["WARNING", "WARNING"]
    assert "Invalid cursor" in lines[0]["message"]
    assert "Invalid trace id" in lines[1]["message"]
    for line in lines:
        assert "exc_info" not in line
        assert line["user_id"] == str(token_user.pk)
        assert line["request_id"]


def test_a_server_error_is_masked_and_logged_as_an_error_with_its_traceback(
    http: httpx.Client, auth: dict[str, str], token_user: Any, json_lines: JsonLines
) -> None:
    table = OTelTrace._meta.db_table
    # A real database failure: the table the query reads is gone for the moment.
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_away"')
    try:
        response = http.post("/graphql/", json={"query": "{ traces { totalCount } }"}, headers=auth)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "{table}_away" RENAME TO "{table}"')

    assert response.status_code == 200
    assert response.json()["errors"][0]["message"] == "Unexpected error."
    (line,) = [x for x in json_lines.messages("graphql_api.schema") if x["level"] == "ERROR"]
    assert f"{table}" in line["message"] and "traces" in line["message"]
    assert "UndefinedTable" in line["exc_info"]
    assert line["user_id"] == str(token_user.pk)


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2fcampus_core/settings.py",
        "/static/../../campus_core/settings.py",
        "/static/%2e%2e/%2e%2e/campus_core/settings.py",
        "/static/..%5c..%5ccampus_core%5csettings.py",
        "/static/graphql_api/..%2f..%2f..%2fmodels.py",
    ],
)
def test_a_static_path_out_of_the_static_folders_is_a_404(
    http: httpx.Client, json_lines: JsonLines, path: str
) -> None:
    response = http.get(path)

    assert response.status_code == 404, response.text
    assert "SECRET_KEY" not in response.text
    assert not [line for line in json_lines.lines if line["level"] in ("ERROR", "CRITICAL")]
