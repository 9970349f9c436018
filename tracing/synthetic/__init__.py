"""Synthetic agent runs: what a run of ``AgentCore`` looks like, built without running it.

``run`` turns the description of one run (``AgentRun``: question, model, iterations, tool
calls, outcome, naming generation) into its spans, the same tree ``AgentCore`` writes;
those spans become stored rows (``tracing.export.rows``) or real OTel spans (``emit``).
``world`` draws realistic runs at random. Used by ``seed_traces``, the tests and the
benchmarks: there is one description of an agent run's shape, here.
"""
