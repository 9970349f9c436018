"""Synthetic agent runs: what a run of ``AgentCore`` looks like, built without running it.

``shape`` describes one run (``AgentRun``: question, model, iterations, tool calls,
outcome, naming generation); ``run`` turns it into its spans, the same tree ``AgentCore``
writes (named per generation by ``names``), which become stored rows
(``tracing.export.rows``) or real OTel spans (``emit``). ``world`` draws realistic runs at
random; ``chunks`` cuts a seeded stream of them into self-contained chunks for bulk
loading. Used by ``seed_traces``, the tests and the benchmarks: there is one description
of an agent run's shape, here.
"""
