"""Span → row: the stored values of one span, made storable, plus its summary facts.

Owns ``SpanRow`` (what the exporter buffers and writes, in ``tracing.models.SPAN_COLUMNS``
order), ``RootInfo`` (what an agent span tells its trace) and the cleaning of values
PostgreSQL/JSON reject (NUL bytes, lone surrogates, NaN, non-JSON types), with values over
the byte cap truncated behind ``TRUNCATION_MARKER``. ``build_row`` is used by the exporter
(through ``span_to_row``) and by the synthetic seeder alike, so both store the same rows.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tracing.conventions import attributes as A
from tracing.conventions import semconv
from tracing.conventions.semconv import Concept, SpanCategory

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRUNCATION_MARKER = "…[truncated {n} bytes]"
_INTERNAL = SpanKind.INTERNAL.name


def ns_to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


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
) -> SpanRow:
    """The stored row of one span, from its parts (ids as OTel integers)."""
    if attributes.__class__ is dict and A.IN_AGENT_RUN not in attributes:
        raw: dict[str, Any] = attributes  # type: ignore[assignment]  # only read from here
    else:
        raw = dict(attributes)
        raw.pop(A.IN_AGENT_RUN, None)  # the exporter's filter mark, not data
    name = clean_str(name, 2000)[:500]
    started_at, ended_at = ns_to_datetime(start_ns), ns_to_datetime(end_ns)
    duration_ms = max(end_ns - start_ns, 0) / 1e6
    status_message = clean_str(status_message, cap)
    trace_uuid = _trace_uuid(trace_id)
    span_hex = format(span_id, "016x")
    facts = semconv.span_facts(name, raw, kind)
    root = None
    if facts.category is SpanCategory.AGENT:
        root = RootInfo(
            span_id=span_hex,
            started_at=started_at,
            duration_ms=duration_ms,
            query=clean_str(semconv.prompt_text(semconv.get(raw, Concept.PROMPT)), cap),
            status=semconv.agent_status(raw, status_code)[:32],
            model=(facts.model or "")[:200],
            agent_name=str(raw.get(A.GEN_AI_AGENT_NAME) or name.partition(" ")[2])[:200],
            conversation_id=_optional_int(semconv.get(raw, Concept.CONVERSATION_ID)),
            user_message_id=_optional_int(raw.get(A.USER_MESSAGE_ID)),
            ai_message_id=_optional_int(raw.get(A.AI_MESSAGE_ID)),
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
    )
    return SpanRow(trace_uuid, span_hex, values, started_at, ended_at, facts, root)


def span_to_row(span: ReadableSpan, cap: int) -> SpanRow:
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
        [
            {
                "name": event.name,
                "timestamp": ns_to_datetime(event.timestamp).isoformat(),
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ],
        span.instrumentation_scope.name if span.instrumentation_scope else "",
        cap,
    )
