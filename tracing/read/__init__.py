"""The read side of stored traces: what the GraphQL API calls, and nothing writes.

- ``spans``: the one record of a stored span (``SpanRecord``, read from
  ``tracing.models.SPAN_COLUMNS``) and the span queries: a trace's spans, root spans, one
  span by id.
- ``tree``: a trace's spans placed as a tree (depth, offset, self time, parent, children).
- ``stats``: the dashboard aggregates, computed by PostgreSQL.
- ``span_search``: span search: attribute conditions across naming generations (the one
  alias table), keyset pages of spans in one query.
- ``span_stats``: aggregates over spans, on the promoted span columns.

Each function runs a fixed number of SQL statements whatever the number of traces or spans
involved. What a span *is* (agent, llm, tool, ...) is decided by ``tracing.conventions.semconv``
only.
"""
