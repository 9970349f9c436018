"""The Django project whose chat agent is observed, and its observability wiring."""
