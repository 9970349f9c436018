"""``manage.py prune_traces [--dry-run] [--days N]``: apply the retention policy now.

For cron users (``TRACE_PRUNE_SCHEDULE=off``) and for a look before the first prune
(``--dry-run`` counts what would go and changes nothing). The rule and the order of work
are in tracing/retention.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tracing import retention
from tracing.export import conninfo_for


class Command(BaseCommand):
    help = "Remove agent runs older than TRACE_RETENTION_DAYS (whole span partitions first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
        parser.add_argument(
            "--days", type=int, default=None, help="override TRACE_RETENTION_DAYS for this run"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else retention.retention_days()
        if days is None:
            self.stdout.write("TRACE_RETENTION_DAYS is unset: every run is kept, nothing to do")
            return
        if days < 1:
            raise CommandError("--days must be a positive number of days")
        try:
            report = retention.prune(conninfo_for(), datetime.now(UTC), days, options["dry_run"])
        except retention.PruneBusy as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
