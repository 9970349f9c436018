"""Django's middleware run on the event loop (``campus_core.middleware``) still does all of
its work, over real HTTP: a form login saves the session, the CSRF check refuses a POST
without its token, a message added by an admin action reaches the next page, and a
logout ends the session."""

from __future__ import annotations

import re

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from graphql_api.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"


def _csrf_form_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token in the form"
    return match.group(1)


def _login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    form = client.get("/admin/login/")
    assert form.status_code == 200 and "csrftoken" in client.cookies
    return client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": _csrf_form_token(form.text),
            "next": "/admin/",
        },
    )


def test_a_form_login_saves_the_session_and_a_message_reaches_the_next_page(
    live_server_url: str,
) -> None:
    # given a staff user with an API token
    user = get_user_model().objects.create_user("grace", password=PASSWORD, is_staff=True)
    user.is_superuser = True
    user.save()
    token, _ = ApiToken.issue(user, name="dashboard")
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        # when they sign in through the admin form
        signed_in = _login(client, "grace", PASSWORD)

        # then the session was saved (a query: on the request's thread) and works
        assert signed_in.status_code == 302, signed_in.text[:500]
        assert signed_in.headers["location"] == "/admin/"
        assert Session.objects.filter(session_key=client.cookies["sessionid"]).exists()
        assert client.get("/admin/").status_code == 200

        # when they revoke the token with the admin action (a POST checked for CSRF)
        changelist = client.get("/admin/graphql_api/apitoken/")
        revoked = client.post(
            "/admin/graphql_api/apitoken/",
            data={
                "action": "revoke",
                "_selected_action": str(token.pk),
                "csrfmiddlewaretoken": _csrf_form_token(changelist.text),
            },
        )

        # then the action's message is stored and shown on the next page, once
        assert revoked.status_code == 302
        shown = client.get(revoked.headers["location"])
        assert "Revoked 1 token(s)." in shown.text
        assert "Revoked 1 token(s)." not in client.get("/admin/graphql_api/apitoken/").text
        token.refresh_from_db()
        assert token.revoked_at is not None

        # and logging out ends the session
        logout = client.post(
            "/admin/logout/", data={"csrfmiddlewaretoken": _csrf_form_token(shown.text)}
        )
        assert logout.status_code == 200
        assert client.get("/admin/").status_code == 302


def test_a_post_without_its_csrf_token_is_refused(live_server_url: str) -> None:
    get_user_model().objects.create_user("alan", password=PASSWORD, is_staff=True)
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        client.get("/admin/login/")
        refused = client.post(
            "/admin/login/", data={"username": "alan", "password": PASSWORD, "next": "/admin/"}
        )
        assert refused.status_code == 403
        assert "sessionid" not in client.cookies
