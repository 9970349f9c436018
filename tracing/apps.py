from __future__ import annotations

import os
import sys

from django.apps import AppConfig

# Commands that never run the agent: no tracing pipeline for them.
_UNTRACED_COMMANDS = {
    "makemigrations",
    "migrate",
    "check",
    "collectstatic",
    "export_schema",
    "showmigrations",
    "sqlmigrate",
    "createsuperuser",
    "changepassword",
    "test",
}


def _should_init() -> bool:
    argv = sys.argv
    if len(argv) > 1 and os.path.basename(argv[0]) in {"manage.py", "django-admin"}:
        command = argv[1]
        if command in _UNTRACED_COMMANDS:
            return False
        # runserver's autoreloader parent only watches files; the child (RUN_MAIN) serves.
        if command == "runserver" and os.environ.get("RUN_MAIN") != "true":
            return "--noreload" in argv
    return True


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Agent traces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if _should_init():
            from tracing.tracer import init_tracing

            init_tracing()
