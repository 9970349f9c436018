"""Span → row: the stored values of one span, made storable, plus its summary facts.

Owns ``SpanRow`` (what the exporter buffers and writes, in ``tracing.models.SPAN_COLUMNS``
order), ``RootInfo`` (what an agent span tells its trace), ``ResourceRef`` (a span's
resource, stored once per distinct resource) and the cleaning of values
PostgreSQL/JSON reject (NUL bytes, lone surrogates, NaN, non-JSON types), with values over
the byte cap truncated behind ``TRUNCATION_MARKER``. ``build_row`` is used by the exporter
(through ``span_to_row``) and by the synthetic seeder alike, so both store the same rows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, SpanCategory

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRUNCATION_MARKER = "…[truncated {n} bytes]"
_INTERNAL = SpanKind.INTERNAL.name


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(0, ns // 1_000_000_000, ns // 1000 % 1_000_000)


# --- making values storable ----------------------------------------------------------------


def clean_str(value: str, cap: int) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: PostgreSQL rejects them
            value = value.encode("utf-8", "replace").decode("utf-8")
    if len(value) > cap // 4 and len(encoded := value.encode("utf-8")) > cap:
        kept = encoded[:cap].decode("utf-8", "ignore")
        value = kept + TRUNCATION_MARKER.format(n=len(encoded) - len(kept.encode("utf-8")))
    return value


def _clean_value(value: Any, cap: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_str(value, cap)
    if isinstance(value, bytes | bytearray):
        return clean_str(bytes(value).decode("utf-8", "replace"), cap)
    if isinstance(value, Mapping):
        return {clean_str(str(k), cap): _clean_value(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        cleaned = [_clean_value(v, cap) for v in value]
        text = json.dumps(cleaned, ensure_ascii=False)
        if len(text) > cap:
            return clean_str(text, cap)
        return cleaned
    return clean_str(repr(value), cap)


def _plain_json(value: Any) -> bool:
    """Whether ``value`` holds only what ``json.dumps(allow_nan=False)`` takes as it is.

    For such values orjson writes the same JSON, about five times faster; anything else
    (NaN, which orjson would turn into null silently, bytes, other objects) takes the
    standard-library path and its cleaning, unchanged.
    """
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return True
    if cls is float:
        return math.isfinite(value)
    if cls is dict:
        for key, item in value.items():
            if key.__class__ is not str:
                return False
            cls = item.__class__
            if not (cls is str or cls is int or cls is bool or _plain_json(item)):
                return False
        return True
    if cls is list or cls is tuple:
        return all(_plain_json(item) for item in value)
    return False


def storable_json(value: Mapping[str, Any] | Sequence[Any], cap: int) -> str:
    """JSON text PostgreSQL's jsonb accepts, each value at most ``cap`` bytes."""
    if _plain_json(value):
        try:
            # orjson's output is valid UTF-8, so only NUL and the size are left to check.
            fast = orjson.dumps(value).decode()
            if len(fast) <= cap and "\\u0000" not in fast:
                return fast
        except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
            pass
    text: str | None
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = None
    if text is not None and len(text) <= cap and "\\u0000" not in text:
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return json.dumps(_clean_value(value, cap), ensure_ascii=False, separators=(",", ":"))


# --- resources --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """A span's resource as stored: its ``OTelResource`` row and its ``service.name``."""

    id: int
    service_name: str
    attributes_json: str


def resource_ref(attributes: Mapping[str, Any], cap: int) -> ResourceRef:
    """The stored form of a resource; equal attributes give the same id (a 63-bit digest
    of their canonical JSON), so every process's resource is one row however often sent."""
    text = storable_json(dict(sorted(attributes.items())), cap)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    service = attributes.get(A.SERVICE_NAME)
    return ResourceRef(
        id=int.from_bytes(digest, "big") >> 1,  # a non-negative bigint
        service_name=clean_str(str(service), 2000)[:200] if service else "",
        attributes_json=text,
    )


# ``span_to_row`` sees the same few Resource objects (one per provider, one per OTLP
# request) for thousands of spans: each is digested once. The entry holds the object, so
# its id cannot be reused while it is cached.
_resource_refs: dict[tuple[int, int], tuple[Resource, ResourceRef]] = {}
_resource_refs_lock = threading.Lock()


def _cached_resource_ref(resource: Resource, cap: int) -> ResourceRef:
    key = (id(resource), cap)
    hit = _resource_refs.get(key)
    if hit is not None and hit[0] is resource:
        return hit[1]
    ref = resource_ref(resource.attributes, cap)
    with _resource_refs_lock:
        if len(_resource_refs) >= 256:
            _resource_refs.clear()
        _resource_refs[key] = (resource, ref)
    return ref


# --- rows -------------------------------------------------------------------------------------


@dataclass(slots=True)
class RootInfo:
    """What the trace's agent span (invoke_agent / agent_run) contributes to its summary."""

    span_id: str
    started_at: datetime
    duration_ms: float
    query: str
    status: str
    model: str
    agent_name: str
    conversation_id: int | None
    user_message_id: int | None
    ai_message_id: int | None
    service_name: str = ""
    session_id: str = ""


@dataclass(slots=True)
class SpanRow:
    """One span ready to store: ``values`` in ``SPAN_COLUMNS`` order, JSON as text."""

    trace_id: uuid.UUID
    span_id: str
    values: tuple[Any, ...]
    started_at: datetime
    ended_at: datetime
    facts: semconv.SpanFacts
    root: RootInfo | None
    resource: ResourceRef | None = None
    # The conversation/session id the span carries, as text ('' when none).
    session_id: str = ""
    # Marked by the in-process tagger as inside an agent run.
    in_agent_run: bool = False

    @property
    def service_name(self) -> str:
        return self.resource.service_name if self.resource is not None else ""


def promoted_values(facts: semconv.SpanFacts) -> tuple[str, str | None, str | None, int, int]:
    """The promoted columns of a span (``kind`` .. ``output_tokens`` of ``SPAN_COLUMNS``),
    from the classifier's facts: what span search filters and aggregates on. Used by
    ``build_row`` (so by the exporter and the synthetic seeder) and by the migration that
    backfilled them."""
    return (
        facts.category.value,
        facts.model[:200] if facts.model else None,
        facts.tool_name[:200] if facts.tool_name else None,
        facts.input_tokens,
        facts.output_tokens,
    )


def _optional_int(value: Any) -> int | None:
    number = semconv.as_int(value)
    return number if number > 0 else None


@functools.lru_cache(maxsize=4096)
def _trace_uuid(trace_id: int) -> uuid.UUID:
    # The spans of one trace arrive together: one UUID object per trace, not per span.
    return uuid.UUID(int=trace_id)


def build_row(
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status_code: str,
    status_message: str,
    attributes: Mapping[str, Any],
    events: list[dict[str, Any]],
    scope: str,
    cap: int,
    resource: ResourceRef | None = None,
) -> SpanRow:
    """The stored row of one span, from its parts (ids as OTel integers)."""
    in_agent_run = False
    if attributes.__class__ is dict and A.IN_AGENT_RUN not in attributes:
        raw: dict[str, Any] = attributes  # type: ignore[assignment]  # only read from here
    else:
        raw = dict(attributes)
        in_agent_run = bool(raw.pop(A.IN_AGENT_RUN, None))  # the tagger's mark, not data
    name = clean_str(name, 2000)[:500]
    started_at, ended_at = ns_to_datetime(start_ns), ns_to_datetime(end_ns)
    duration_ms = max(end_ns - start_ns, 0) / 1e6
    status_message = clean_str(status_message, cap)
    trace_uuid = _trace_uuid(trace_id)
    span_hex = format(span_id, "016x")
    facts = semconv.span_facts(name, raw, kind)
    session = semconv.get(raw, Concept.CONVERSATION_ID)
    session_id = clean_str(str(session), 2000)[:255] if session not in (None, "") else ""
    root = None
    if facts.category is SpanCategory.AGENT:
        # Ids of our own rows count only from our own service: another service's
        # conversation "17" is not our Conversation 17 (it stays text: session_id). A span
        # without a resource was built in this process; a resource without a service
        # name is not ours.
        service = resource.service_name if resource is not None else ""
        ours = resource is None or service == settings.OTEL_SERVICE_NAME
        root = RootInfo(
            span_id=span_hex,
            started_at=started_at,
            duration_ms=duration_ms,
            query=clean_str(semconv.prompt_text(semconv.get(raw, Concept.PROMPT)), cap),
            status=semconv.agent_status(raw, status_code)[:32],
            model=(facts.model or "")[:200],
            agent_name=clean_str(semconv.agent_name(name, raw), 2000)[:200],
            conversation_id=_optional_int(session) if ours else None,
            user_message_id=_optional_int(raw.get(A.USER_MESSAGE_ID)) if ours else None,
            ai_message_id=_optional_int(raw.get(A.AI_MESSAGE_ID)) if ours else None,
            service_name=service,
            session_id=session_id,
        )
    values = (
        trace_uuid,
        span_hex,
        format(parent_span_id, "016x") if parent_span_id is not None else "",
        name,
        kind,
        started_at,
        ended_at,
        duration_ms,
        status_code,
        status_message,
        storable_json(raw, cap),
        storable_json(events, cap) if events else "[]",
        scope[:200],
        resource.service_name if resource is not None else "",
        resource.id if resource is not None else None,
        *promoted_values(facts),
    )
    return SpanRow(
        trace_uuid,
        span_hex,
        values,
        started_at,
        ended_at,
        facts,
        root,
        resource,
        session_id,
        in_agent_run,
    )


def event_dict(name: str, timestamp_ns: int, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """One span event as stored in the ``events`` column."""
    return {
        "name": name,
        "timestamp": ns_to_datetime(timestamp_ns).isoformat(),
        "attributes": dict(attributes),
    }


def span_to_row(span: ReadableSpan, cap: int) -> SpanRow:
    """The row of an SDK span (the in-process exporter's entry; OTLP ingest feeds
    ``build_row`` from protobuf, ``tracing.ingest.decode``)."""
    ctx = span.context
    assert ctx is not None
    start_ns = span.start_time or 0
    return build_row(
        ctx.trace_id,
        ctx.span_id,
        span.parent.span_id if span.parent is not None else None,
        span.name or "",
        span.kind.name if span.kind is not None else _INTERNAL,
        start_ns,
        span.end_time or start_ns,
        span.status.status_code.name,
        span.status.description or "",
        span.attributes or {},
        [event_dict(event.name, event.timestamp, event.attributes or {}) for event in span.events],
        span.instrumentation_scope.name if span.instrumentation_scope else "",
        cap,
        _cached_resource_ref(span.resource, cap) if span.resource is not None else None,
    )
