"""The Sentry bridge: error events, logs and our OpenTelemetry spans to Sentry, FERPA-scrubbed.

Only when ``SENTRY_DSN`` is set. OpenTelemetry stays the only system that creates spans:

- sentry-sdk runs with its own tracing off (``traces_sample_rate=None``, Django's span
  knobs off) and with the OTLP integration, which links every event and log to the
  current OTel span (the OTel trace id *is* Sentry's trace id);
- spans reach Sentry's OTLP endpoint from OUR TracerProvider (``tracing.pipeline``), through
  ``SentrySpanBridge``, a processor that provider holds from start-up and that forwards to
  a ``BatchSpanProcessor(ScrubbingSpanExporter(OTLPSpanExporter))`` while Sentry is on.
  The integration's own exporter set-up is not used: it would look for (or install) a
  global provider of its own, and one provider must feed both PostgreSQL and Sentry;
- outbound requests carry ``traceparent`` (W3C) plus ``sentry-trace`` and ``baggage``
  (``SentryTracePropagator``), so downstream services join the same trace.

FERPA: ``FerpaScrubber`` removes the configured patterns (emails, student IDs, names a
student gives, ...) from everything that leaves for Sentry: events (``before_send``),
logs (``before_send_log``) and span attributes, events and status messages (spans do not
pass through ``before_send_transaction``, so they are scrubbed on copies before export).
The PostgreSQL exporter sees the original spans: staff keep the full text.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sentry_sdk
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import propagate
from opentelemetry.context import Context, get_current, get_value
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Setter, TextMapPropagator, default_setter
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, Status, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sentry_sdk.consts import VERSION, EndpointType
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.opentelemetry.consts import SENTRY_BAGGAGE_KEY
from sentry_sdk.integrations.opentelemetry.propagator import SentryPropagator
from sentry_sdk.integrations.otlp import OTLPIntegration, otel_propagation_context
from sentry_sdk.scope import (
    register_external_propagation_context,
    remove_external_propagation_context,
)
from sentry_sdk.tracing import BAGGAGE_HEADER_NAME, SENTRY_TRACE_HEADER_NAME
from sentry_sdk.tracing_utils import Baggage
from sentry_sdk.utils import BadDsn, Dsn

logger = logging.getLogger(__name__)

# Identifiers that join Sentry to the admin and the logs; a user-supplied pattern such as
# r"\d{9}" must never break them.
PROTECTED_KEYS = frozenset({"trace_id", "span_id", "parent_span_id", "event_id", "release"})


class FerpaScrubber:
    """Replaces every match of the patterns in strings, recursively through dicts/lists.

    A pattern with a named group ``pii`` replaces only that group (so "my name is Jane"
    becomes "my name is [Filtered]"); any other pattern replaces the whole match.
    """

    def __init__(self, patterns: Iterable[str], replacement: str = "[Filtered]") -> None:
        compiled: list[re.Pattern[str]] = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ImproperlyConfigured(
                    f"SENTRY_SCRUB_PATTERNS: {pattern!r} is not a valid regular expression: {exc}"
                ) from exc
        self.patterns = tuple(compiled)
        self.replacement = replacement

    def _replace(self, match: re.Match[str]) -> str:
        if "pii" in match.re.groupindex and match.group("pii") is not None:
            start, end = match.span("pii")
            whole_start = match.start()
            text = match.group(0)
            return text[: start - whole_start] + self.replacement + text[end - whole_start :]
        return self.replacement

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(self._replace, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                key: item if key in PROTECTED_KEYS else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        return value

    # --- sentry-sdk hooks -------------------------------------------------------------------
    def before_send(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        scrubbed: dict[str, Any] = self.value(event)
        user = scrubbed.get("user")
        if isinstance(user, dict):
            # Attribution by id only: usernames and emails of students are student data.
            scrubbed["user"] = {k: v for k, v in user.items() if k == "id"}
        return scrubbed

    def before_send_log(self, log: Any, hint: dict[str, Any]) -> Any:
        return self.value(log)

    # --- spans ------------------------------------------------------------------------------
    def span(self, span: ReadableSpan) -> ReadableSpan:
        """A scrubbed copy; the original (which PostgreSQL persists) is left alone."""
        status = span.status
        if status.description:
            status = Status(status.status_code, self.text(status.description))
        return ReadableSpan(
            name=self.text(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self.value(dict(span.attributes or {})),
            events=[
                Event(e.name, self.value(dict(e.attributes or {})), e.timestamp)
                for e in span.events
            ],
            links=[
                Link(link.context, self.value(dict(link.attributes or {}))) for link in span.links
            ],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class ScrubbingSpanExporter(SpanExporter):
    """Exports scrubbed copies of the spans through another exporter."""

    def __init__(self, inner: SpanExporter, scrubber: FerpaScrubber) -> None:
        self.inner = inner
        self.scrubber = scrubber

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self.scrubber.span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class SentrySpanBridge(SpanProcessor):
    """Sits on our TracerProvider for the life of the process and forwards spans to the
    Sentry export pipeline while one is attached; a no-op otherwise.

    Like any span processor it must not block or raise into the app: the delegate is a
    ``BatchSpanProcessor``, which only queues on ``on_end``.
    """

    def __init__(self) -> None:
        self._delegate: SpanProcessor | None = None
        self._lock = threading.Lock()
        # Providers holding this bridge (weakly: test providers come and go).
        self.providers: weakref.WeakSet[TracerProvider] = weakref.WeakSet()

    @property
    def active(self) -> bool:
        return self._delegate is not None

    def attach(self, delegate: SpanProcessor) -> None:
        with self._lock:
            previous, self._delegate = self._delegate, delegate
        if previous is not None:
            previous.shutdown()

    def detach(self) -> None:
        """Flush what is queued for Sentry and stop forwarding."""
        with self._lock:
            previous, self._delegate = self._delegate, None
        if previous is not None:
            previous.shutdown()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        delegate = self._delegate
        if delegate is not None:
            delegate.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        delegate = self._delegate
        if delegate is not None:
            delegate.on_end(span)

    def shutdown(self) -> None:
        # Called when the process's provider shuts down (exit): flush Sentry's queue too.
        self.detach()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        delegate = self._delegate
        return delegate.force_flush(timeout_millis) if delegate is not None else True


class SentryTracePropagator(TextMapPropagator):
    """``sentry-trace`` and ``baggage`` from the current OTel span, for outbound requests.

    Incoming Sentry baggage (an upstream SDK is the head of the trace) is passed on as is;
    otherwise we are the head and send a dynamic sampling context of our own, with the
    OTel trace id, so Sentry can join downstream events to this trace.
    Extraction is sentry-sdk's own (``SentryPropagator``).
    """

    def __init__(self) -> None:
        self._extractor = SentryPropagator()

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Any = None
    ) -> Context:
        if getter is None:
            return self._extractor.extract(carrier, context)
        return self._extractor.extract(carrier, context, getter)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        client = sentry_sdk.get_client()
        if not client.is_active():
            return
        context = context if context is not None else get_current()
        span_context = get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        setter.set(carrier, SENTRY_TRACE_HEADER_NAME, sentry_trace_header(span_context))
        baggage = get_value(SENTRY_BAGGAGE_KEY, context)
        if not isinstance(baggage, Baggage):
            items = {
                "trace_id": format(span_context.trace_id, "032x"),
                "sampled": "true" if span_context.trace_flags.sampled else "false",
            }
            if client.parsed_dsn is not None:
                items["public_key"] = client.parsed_dsn.public_key
            for option in ("environment", "release"):
                if client.options.get(option):
                    items[option] = str(client.options[option])
            baggage = Baggage(items, mutable=False)
        serialized = baggage.serialize(include_third_party=True)
        if serialized:
            setter.set(carrier, BAGGAGE_HEADER_NAME, serialized)

    @property
    def fields(self) -> set[str]:
        return {SENTRY_TRACE_HEADER_NAME, BAGGAGE_HEADER_NAME}


def sentry_trace_header(span_context: SpanContext) -> str:
    sampled = "1" if span_context.trace_flags.sampled else "0"
    return f"{span_context.trace_id:032x}-{span_context.span_id:016x}-{sampled}"


# --- process-wide state: sentry-sdk itself is process-global -----------------------------
_lock = threading.RLock()
_bridge = SentrySpanBridge()
_previous_textmap: TextMapPropagator | None = None


def get_bridge() -> SentrySpanBridge:
    return _bridge


def scrubber_from_settings() -> FerpaScrubber:
    return FerpaScrubber(settings.SENTRY_SCRUB_PATTERNS, settings.SENTRY_SCRUB_REPLACEMENT)


def attach_to_tracer_provider(provider: TracerProvider) -> None:
    """Called by ``tracing.pipeline.init_telemetry``: Sentry becomes a consumer of our
    provider, and Sentry starts here when ``SENTRY_DSN`` is set."""
    with _lock:
        if provider not in _bridge.providers:
            provider.add_span_processor(_bridge)
            _bridge.providers.add(provider)
        if settings.SENTRY_DSN and not _bridge.active:
            init_sentry(provider=provider)


def init_sentry(
    dsn: str | None = None,
    *,
    provider: TracerProvider | None = None,
    scrubber: FerpaScrubber | None = None,
    **options: Any,
) -> bool:
    """Start sentry-sdk (``dsn`` or ``settings.SENTRY_DSN``; nothing without one) and
    route ``provider``'s spans to it (without one: errors and logs only).

    ``options`` override the sentry_sdk.init options built from settings. Returns whether
    Sentry is on. Calling it again replaces the previous client and span pipeline.
    """
    dsn = dsn if dsn is not None else settings.SENTRY_DSN
    if not dsn:
        return False
    scrubber = scrubber or scrubber_from_settings()
    try:
        auth = Dsn(dsn).to_auth(f"sentry.python/{VERSION}")
    except BadDsn as exc:
        raise ImproperlyConfigured(f"SENTRY_DSN is not a valid Sentry DSN: {exc}") from exc

    with _lock:
        init_options: dict[str, Any] = {
            "dsn": dsn,
            "environment": settings.SENTRY_ENVIRONMENT or None,
            "release": settings.SENTRY_RELEASE or None,
            # Sentry's own tracing off: every span comes from OpenTelemetry.
            "traces_sample_rate": None,
            # User attribution (scrubbed down to the id in before_send); the other data
            # categories keep Sentry's defaults, cookies and tokens on its denylist.
            "data_collection": {"user_info": settings.SENTRY_COLLECT_USER_INFO},
            # Sentry's auto-enabling integrations (strawberry, httpx, openai, ...) only add
            # Sentry-side spans and library patches; OTel already observes those libraries.
            "auto_enabling_integrations": False,
            "enable_logs": settings.SENTRY_ENABLE_LOGS,
            "before_send": scrubber.before_send,
            "before_send_log": scrubber.before_send_log,
            "integrations": [
                # Trace linking only; exporter and propagator are wired to our provider below.
                OTLPIntegration(
                    setup_otlp_traces_exporter=False,
                    setup_propagator=False,
                    capture_exceptions=False,
                ),
                # Kept for error capture (request, user); its span knobs off.
                DjangoIntegration(
                    middleware_spans=False,
                    signals_spans=False,
                    cache_spans=False,
                    db_transaction_spans=False,
                ),
                LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            ],
        }
        init_options.update(options)
        sentry_sdk.init(**init_options)
        # setup_once runs once per process; register again in case a shutdown removed it.
        register_external_propagation_context(otel_propagation_context)

        if provider is not None:
            if provider not in _bridge.providers:
                provider.add_span_processor(_bridge)
                _bridge.providers.add(provider)
            exporter = OTLPSpanExporter(
                endpoint=auth.get_api_url(EndpointType.OTLP_TRACES),
                headers={"X-Sentry-Auth": auth.to_header()},
            )
            _bridge.attach(
                BatchSpanProcessor(
                    ScrubbingSpanExporter(exporter, scrubber),
                    schedule_delay_millis=settings.TRACING_SCHEDULE_DELAY_MS,
                )
            )
        _install_propagator()
    logger.info("Sentry enabled: spans, errors and logs go to %s", auth.host)
    return True


def _install_propagator() -> None:
    global _previous_textmap
    current = propagate.get_global_textmap()
    if _previous_textmap is None:
        _previous_textmap = current
    # No W3C baggage propagator beside it: both write the one ``baggage`` header, and the
    # Sentry one carries the dynamic sampling context Sentry needs (we set no OTel baggage).
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), SentryTracePropagator()])
    )


def shutdown_sentry(timeout: float = 5.0) -> None:
    """Flush spans, events and logs to Sentry and stop sending (tests, process exit)."""
    global _previous_textmap
    with _lock:
        _bridge.detach()
        client = sentry_sdk.get_client()
        if client.is_active():
            client.close(timeout=timeout)
        sentry_sdk.get_global_scope().set_client(None)
        remove_external_propagation_context()
        if _previous_textmap is not None:
            propagate.set_global_textmap(_previous_textmap)
            _previous_textmap = None


def ensure_started() -> bool:
    """Start Sentry from settings if the tracing hook has not (e.g. ``OTEL_SDK_DISABLED``):
    error capture does not depend on tracing."""
    if not settings.SENTRY_DSN or sentry_sdk.get_client().is_active():
        return sentry_sdk.get_client().is_active()
    return init_sentry()
