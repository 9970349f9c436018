"""A document's cost is bounded by its size, over real HTTP (httpx → uvicorn → the ASGI
app): fragment fan-outs of any shape are refused at once while other requests are
answered; an operation in flight holds no one else up; one past the wall-clock cap is
cancelled, its database statement with it, and one past the result-size cap is stopped;
the queries staff actually send still pass."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from graphql import get_introspection_query

from graphql_api import execution
from graphql_api.limits import MAX_DEPTH
from graphql_api.result_cost import MAX_RESULT_COST
from graphql_api.views import MSG_TOO_MANY
from tests.graphql_support import api_token, build_dataset, make_user
from tracing.export import PostgresSpanExporter, conninfo_for
from tracing.models import OTelTrace

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_ID = "0123456789abcdef0123456789abcdef"
ORDINARY = {"query": "{ filterOptions { statuses } }"}


def fan_out(k: int, on: str, wrap: Callable[[str], str], leaf: str, double: str) -> str:
    """``wrap(...L<k>)`` where each fragment holds its predecessor twice: 2^k selections."""
    fragments = [f"fragment L0 on {on} {{ {leaf} }}"] + [
        f"fragment L{i} on {on} {{ {double.format(prev=f'L{i - 1}')} }}" for i in range(1, k + 1)
    ]
    return wrap(f"...L{k}") + " " + " ".join(fragments)


SHAPES: dict[str, Callable[[int], str]] = {
    "root": lambda k: fan_out(k, "Query", "{{ {} }}".format, "__typename", "...{prev} ...{prev}"),
    "trace": lambda k: fan_out(
        k,
        "Trace",
        lambda s: f'{{ trace(id: "{TRACE_ID}") {{ {s} }} }}',
        "id",
        "...{prev} ...{prev}",
    ),
    "span": lambda k: fan_out(
        k,
        "Span",
        lambda s: f'{{ trace(id: "{TRACE_ID}") {{ spans {{ {s} }} }} }}',
        "id children { id }",
        "...{prev} ...{prev}",
    ),
    "inline": lambda k: fan_out(
        k, "Query", "{{ {} }}".format, "__typename", "... on Query {{ ...{prev} }} ...{prev}"
    ),
    "nested": lambda k: fan_out(
        k,
        "Span",
        lambda s: f'{{ trace(id: "{TRACE_ID}") {{ spans {{ {s} }} }} }}',
        "id",
        "children {{ ...{prev} }} parent {{ ...{prev} }}",
    ),
    "directives": lambda k: fan_out(
        k,
        "Query",
        "{{ {} }}".format,
        "__typename",
        "...{prev} @include(if: true) ...{prev} @skip(if: false)",
    ),
}


@pytest.fixture
def auth() -> dict[str, str]:
    make_user("dashboard", staff=True)
    return {"Authorization": f"Bearer {api_token('dashboard')}"}


@pytest.fixture
def post(live_server_url: str, auth: dict[str, str]) -> Iterator[Callable[..., httpx.Response]]:
    """POST a GraphQL request as the token's user; safe to call from several threads."""

    def send(body: dict[str, Any]) -> httpx.Response:
        with httpx.Client(base_url=live_server_url, timeout=60) as client:
            return client.post("/graphql/", json=body, headers=auth)

    yield send


@pytest.fixture
def one_trace(db_exporter: PostgresSpanExporter) -> None:
    build_dataset(db_exporter)


def test_fragment_fan_outs_are_refused_while_an_ordinary_request_is_answered(
    post: Callable[..., httpx.Response], one_trace: None, settings: Any
) -> None:
    settings.GRAPHQL_MAX_IN_FLIGHT_PER_USER = 20  # eight at once, from one token
    attacks = {(shape, k): make(k) for shape, make in SHAPES.items() for k in (20, 25, 30)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        refused = {key: pool.submit(post, {"query": doc}) for key, doc in attacks.items()}
        ordinary = pool.submit(post, ORDINARY)
        answered = ordinary.result()

    assert answered.status_code == 200
    assert answered.json()["data"] == {
        "filterOptions": {"statuses": ["completed", "error", "max_iterations", "running"]}
    }
    for key, future in refused.items():
        response = future.result()
        assert response.status_code == 200, (key, response.text)
        body = response.json()
        assert body["data"] is None, key
        messages = [error["message"] for error in body["errors"]]
        assert any("The document is too large" in m for m in messages), (key, messages)


def _waiting_on_a_lock(observer: psycopg.Connection[Any]) -> int:
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return int(row[0]) if row else 0


def _start_blocked(
    pool: ThreadPoolExecutor, post: Callable[..., httpx.Response], observer: psycopg.Connection[Any]
) -> Future[httpx.Response]:
    """Send a query that reads the locked trace table; return once PostgreSQL shows it
    waiting for the lock."""
    slow = pool.submit(post, {"query": "{ traces { totalCount } }"})
    while not _waiting_on_a_lock(observer):
        assert not slow.done(), slow.result().text
        time.sleep(0.01)
    return slow


def test_an_operation_in_flight_holds_up_no_other_request(
    post: Callable[..., httpx.Response], one_trace: None, settings: Any
) -> None:
    settings.GRAPHQL_OPERATION_TIMEOUT_S = 120
    table = OTelTrace._meta.db_table
    conninfo = conninfo_for()
    with (
        psycopg.connect(conninfo) as locker,
        psycopg.connect(conninfo, autocommit=True) as observer,
    ):
        locker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        with ThreadPoolExecutor(max_workers=2) as pool:
            slow = _start_blocked(pool, post, observer)

            # while the first operation waits in the database, the next is answered
            answered = post({"query": "{ __typename }"})
            assert answered.json()["data"] == {"__typename": "Query"}
            assert not slow.done()

            locker.rollback()  # releases the lock
            finished = slow.result()
    assert finished.json()["data"] == {"traces": {"totalCount": 6}}


def test_an_operation_past_the_wall_clock_cap_is_cancelled_with_its_statement(
    post: Callable[..., httpx.Response], one_trace: None, settings: Any
) -> None:
    settings.GRAPHQL_OPERATION_TIMEOUT_S = 0.5
    table = OTelTrace._meta.db_table
    conninfo = conninfo_for()
    with (
        psycopg.connect(conninfo) as locker,
        psycopg.connect(conninfo, autocommit=True) as observer,
    ):
        locker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = _start_blocked(pool, post, observer)
            # answered while the lock is still held: the cap, not the lock, ended it
            response = slow.result()
            assert response.status_code == 200
            assert response.json() == {
                "data": None,
                "errors": [
                    {
                        "message": "The operation was cancelled after 0.5 s "
                        "(GRAPHQL_OPERATION_TIMEOUT_S): ask for fewer rows or fields."
                    }
                ],
            }
            # and its statement no longer waits in PostgreSQL
            assert not _waiting_on_a_lock(observer)
        locker.rollback()
    assert post({"query": "{ traces { totalCount } }"}).json()["data"]["traces"]["totalCount"] == 6


def _nested_children(levels: int) -> str:
    inner = "id name genAi { model }"
    for _ in range(levels):
        inner = f"children {{ id {inner} }}"
    return f'{{ trace(id: "{TRACE_ID}") {{ id spans {{ {inner} }} }} }}'


def test_the_queries_staff_send_still_pass(
    post: Callable[..., httpx.Response], one_trace: None
) -> None:
    introspection = post({"query": get_introspection_query(descriptions=True)})
    assert "errors" not in introspection.json(), introspection.text
    assert introspection.json()["data"]["__schema"]["queryType"]["name"] == "Query"

    # the deepest selection the depth limit allows: trace → spans → 9 children → genAi
    deep = post({"query": _nested_children(MAX_DEPTH - 3)})
    assert deep.json()["data"] == {"trace": None}, deep.text
    too_deep = post({"query": _nested_children(MAX_DEPTH - 2)})
    assert "exceeds maximum operation depth" in too_deep.json()["errors"][0]["message"]

    shared = (
        "query Page { traces(first: 50) { edges { node { ...Row conversation { traces(first: 10) "
        "{ edges { node { ...Row } } } } } } } } "
        "fragment Row on Trace { id query status model startedAt totalDurationMs toolsUsed "
        "rootSpan { ...SpanRow children { ...SpanRow } } } "
        "fragment SpanRow on Span { id name kind op status durationMs }"
    )
    page = post({"query": shared})
    assert "errors" not in page.json(), page.text
    assert len(page.json()["data"]["traces"]["edges"]) == 6


def test_a_result_past_the_size_cap_is_stopped_with_one_error(
    post: Callable[..., httpx.Response], one_trace: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = {"query": "{ traces { edges { node { id spans { id children { id } } } } } }"}
    whole = post(query)
    assert "errors" not in whole.json(), whole.text

    monkeypatch.setattr(execution, "MAX_RESULT_OBJECTS", 10)
    stopped = post(query)

    assert stopped.status_code == 200
    assert stopped.json() == {"data": None, "errors": [{"message": execution.MSG_RESULT_TOO_LARGE}]}


# Among the heaviest documents the estimate lets through: 100 traces, each with its spans
# and their children (100 + 100 x 2 x 100 objects), just under MAX_RESULT_COST.
HEAVIEST = (
    "{ traces(first: 100) { edges { node { id query "
    "spans { id name kind durationMs children { id name } } } } } }"
)


def test_small_requests_are_answered_while_the_heaviest_legal_query_is_completed(
    post: Callable[..., httpx.Response], one_trace: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = post({"query": HEAVIEST}).json()
    assert "errors" not in whole, whole
    assert MAX_RESULT_COST / 2 < whole["extensions"]["cost"]["estimated"] <= MAX_RESULT_COST

    # many slices even on this small dataset; the heavy operation's first wait for a turn
    # (one slice completed, more to come) is held until the small requests are answered
    monkeypatch.setattr(execution, "SLICE_OBJECTS", 10)
    midway, release = threading.Event(), threading.Event()
    take_turn = execution.take_turn

    async def held_once() -> None:
        if not midway.is_set():
            midway.set()
            await asyncio.to_thread(release.wait)
        await take_turn()

    monkeypatch.setattr(execution, "take_turn", held_once)
    with ThreadPoolExecutor(max_workers=1) as pool:
        heavy = pool.submit(post, {"query": HEAVIEST})
        try:
            assert midway.wait(timeout=60), heavy.result().text
            typename = post({"query": "{ __typename }"})
            page = post({"query": "{ traces(first: 5) { edges { node { id status } } } }"})
            assert not heavy.done()
        finally:
            release.set()
        finished = heavy.result().json()

    assert typename.json()["data"] == {"__typename": "Query"}
    assert len(page.json()["data"]["traces"]["edges"]) == 5
    assert finished == whole


def test_a_user_past_the_in_flight_limit_gets_429_and_others_are_answered(
    post: Callable[..., httpx.Response], one_trace: None, settings: Any, live_server_url: str
) -> None:
    settings.GRAPHQL_MAX_IN_FLIGHT_PER_USER = 2
    settings.GRAPHQL_OPERATION_TIMEOUT_S = 120
    make_user("other", staff=True)
    other = {"Authorization": f"Bearer {api_token('other')}"}
    table = OTelTrace._meta.db_table
    conninfo = conninfo_for()
    with (
        psycopg.connect(conninfo) as locker,
        psycopg.connect(conninfo, autocommit=True) as observer,
    ):
        locker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        with ThreadPoolExecutor(max_workers=2) as pool:
            held = [pool.submit(post, {"query": "{ traces { totalCount } }"}) for _ in range(2)]
            while _waiting_on_a_lock(observer) < 2:
                assert not any(f.done() for f in held), [f.result().text for f in held]
                time.sleep(0.01)

            refused = post({"query": "{ __typename }"})
            with httpx.Client(base_url=live_server_url, timeout=60) as client:
                answered = client.post("/graphql/", json={"query": "{ __typename }"}, headers=other)

            locker.rollback()
            finished = [f.result() for f in held]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {"errors": [{"message": MSG_TOO_MANY.format(limit=2)}]}
    assert answered.json()["data"] == {"__typename": "Query"}
    assert [f.json()["data"] for f in finished] == [{"traces": {"totalCount": 6}}] * 2
    # the slots are free again
    assert post({"query": "{ __typename }"}).json()["data"] == {"__typename": "Query"}
