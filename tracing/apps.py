"""The ``tracing`` Django app: models and admin only; telemetry starts in ``tracing.pipeline``."""

from __future__ import annotations

from django.apps import AppConfig


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Agent traces"
    default_auto_field = "django.db.models.BigAutoField"
