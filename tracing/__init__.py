"""Agent traces, along the data flow.

``conventions`` (span names and their meaning) → ``pipeline`` (start-up: provider, tagger,
queue) → ``export`` (spans → rows and trace summaries in PostgreSQL) → ``models``; the
read side (``read``) and the synthetic data (``synthetic``, ``seed_traces``) build on
those. Import the submodule you need: this package imports nothing, so Django can load the
app before the models are ready.
"""
