"""/graphql/ over real HTTP (httpx → uvicorn → the ASGI app): who may ask, CSRF on
session POSTs, API tokens from ``create_api_token``, and GraphiQL for staff."""

from __future__ import annotations

import io

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from graphql_api.models import ApiToken, digest
from tests.graphql_support import api_token, build_dataset, make_user, session_cookies
from tracing.export import PostgresSpanExporter

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = {"query": "{ traces(first: 5) { totalCount edges { node { id query } } } }"}


@pytest.fixture
def one_trace(db_exporter: PostgresSpanExporter) -> None:
    build_dataset(db_exporter)


def _assert_refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert "data" not in body, "a refusal carries no data, not even an empty list"
    assert words in body["errors"][0]["message"]


def test_anonymous_gets_401_not_empty_data(http: httpx.Client, one_trace: None) -> None:
    _assert_refused(http.post("/graphql/", json=QUERY), 401, "Staff only")


def test_anonymous_browser_is_sent_to_login(http: httpx.Client) -> None:
    response = http.get("/graphql/", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"].startswith("/admin/login/?next=/graphql/")


def test_non_staff_session_gets_403(http: httpx.Client, one_trace: None) -> None:
    cookies = session_cookies(make_user("student", staff=False))
    response = http.post("/graphql/", json=QUERY, cookies=cookies)
    _assert_refused(response, 403, "staff users only")


def test_staff_session_post_without_csrf_is_refused(http: httpx.Client, one_trace: None) -> None:
    cookies = session_cookies(make_user("admin", staff=True))
    response = http.post("/graphql/", json=QUERY, cookies=cookies)
    _assert_refused(response, 403, "CSRF")


def test_staff_session_with_csrf_reads_traces_and_gets_graphiql(
    http: httpx.Client, one_trace: None
) -> None:
    cookies = session_cookies(make_user("admin", staff=True))
    page = http.get("/graphql/", headers={"Accept": "text/html"}, cookies=cookies)
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    csrf = page.cookies["csrftoken"]
    response = http.post(
        "/graphql/",
        json=QUERY,
        cookies={**cookies, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    assert body["data"]["traces"]["totalCount"] == 6


def test_api_token_reads_and_is_stored_only_as_a_digest(
    http: httpx.Client, one_trace: None
) -> None:
    make_user("dashboard", staff=True)
    secret = api_token("dashboard", "--name", "grafana")
    stored = ApiToken.objects.get()
    assert stored.key_digest == digest(secret) and secret not in (stored.prefix, stored.key_digest)
    assert stored.last_used_at is None
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["traces"]["totalCount"] == 6
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_revoked_wrong_and_malformed_tokens_get_401(http: httpx.Client, one_trace: None) -> None:
    make_user("dashboard", staff=True)
    secret = api_token("dashboard")
    out = io.StringIO()
    call_command("create_api_token", "dashboard", "--revoke", secret[:12], stdout=out)
    assert "Revoked 1" in out.getvalue()
    for header in (f"Bearer {secret}", f"Bearer {secret}x", "Bearer", f"Token {secret}"):
        response = http.post("/graphql/", json=QUERY, headers={"Authorization": header})
        assert response.status_code == 401, (header, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "data" not in response.json()


def test_a_token_stops_working_when_its_user_loses_staff(
    http: httpx.Client, one_trace: None
) -> None:
    user = make_user("dashboard", staff=True)
    secret = api_token("dashboard")
    user.is_staff = False
    user.save()
    response = http.post("/graphql/", json=QUERY, headers={"Authorization": f"Bearer {secret}"})
    _assert_refused(response, 401, "Invalid or revoked")


def test_tokens_are_only_for_staff_users() -> None:
    make_user("student", staff=False)
    with pytest.raises(CommandError, match="not an active staff user"):
        api_token("student")
    with pytest.raises(CommandError, match="No user named"):
        api_token("nobody")
    assert not ApiToken.objects.exists()


def test_bad_arguments_over_http_are_graphql_errors_not_500(
    http: httpx.Client, one_trace: None
) -> None:
    make_user("dashboard", staff=True)
    auth = {"Authorization": f"Bearer {api_token('dashboard')}"}
    for query in (
        '{ trace(id: "nothex") { id } }',
        '{ traces(after: "garbage") { totalCount } }',
        "{ traces(first: -1) { totalCount } }",
        "{ traces(first: 1000) { totalCount } }",
    ):
        response = http.post("/graphql/", json={"query": query}, headers=auth)
        assert response.status_code == 200, (query, response.text)
        assert response.json()["errors"], query


def test_revoking_from_the_admin_shuts_the_token_out(http: httpx.Client, one_trace: None) -> None:
    get_user_model().objects.create_superuser("root", password="pw-root")
    make_user("dashboard", staff=True)
    secret = api_token("dashboard")
    auth = {"Authorization": f"Bearer {secret}"}
    assert http.post("/graphql/", json=QUERY, headers=auth).status_code == 200
    admin = Client()
    admin.login(username="root", password="pw-root")
    listing = admin.get("/admin/graphql_api/apitoken/")
    assert listing.status_code == 200 and secret[:12] in listing.content.decode()
    assert secret not in listing.content.decode()
    token = ApiToken.objects.get()
    response = admin.post(
        "/admin/graphql_api/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    _assert_refused(http.post("/graphql/", json=QUERY, headers=auth), 401, "revoked")


def test_a_session_cannot_run_queries_over_get(http: httpx.Client, one_trace: None) -> None:
    # A cross-site link or <img> carries the SameSite=Lax session cookie on a GET.
    cookies = session_cookies(make_user("admin", staff=True))
    for accept in ("application/json", "text/html", "*/*", ""):
        response = http.get("/graphql/", params=QUERY, cookies=cookies, headers={"Accept": accept})
        _assert_refused(response, 405, "Queries over GET need an API token")
        assert response.headers["Allow"] == "POST"
    # GraphiQL's page itself still loads for the same session.
    page = http.get("/graphql/", headers={"Accept": "text/html"}, cookies=cookies)
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_an_api_token_may_query_over_get_but_never_mutate(
    http: httpx.Client, one_trace: None
) -> None:
    make_user("dashboard", staff=True)
    auth = {"Authorization": f"Bearer {api_token('dashboard')}"}
    response = http.get("/graphql/", params=QUERY, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["traces"]["totalCount"] == 6
    response = http.get("/graphql/", params={"query": "mutation { __typename }"}, headers=auth)
    _assert_refused(response, 400, "mutations are not allowed when using GET")
