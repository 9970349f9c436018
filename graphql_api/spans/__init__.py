"""The ``Span`` concept: one OpenTelemetry span of an agent run. ``types`` (``Span``,
``GenAi``, ``SpanColumns`` and their enums, built from ``tracing.read.tree``), ``schema``
(``span(traceId, spanId)`` and how a span fetched without its trace is served)."""
