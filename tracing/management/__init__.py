"""Management commands of the tracing app (``seed_traces``)."""
