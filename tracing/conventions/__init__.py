"""The naming contract of agent spans: what every writer writes and every reader reads.

``attributes`` holds every attribute and span name of the four naming generations;
``semconv`` the one alias table, the ``Generation`` enum and ``classify()``. Span kinds and
status codes are OpenTelemetry's own (``opentelemetry.trace.SpanKind`` / ``StatusCode``).
"""
