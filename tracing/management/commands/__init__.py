"""``seed_traces``: bulk synthetic data for the query benchmark."""
