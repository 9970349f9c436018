"""The ``Trace`` concept: one agent run. ``types`` (``Trace``, ``TraceConnection``),
``filters`` (``TraceFilter``), ``ordering`` (``TraceOrder``), ``schema`` (``traces``,
``trace(id)``)."""
