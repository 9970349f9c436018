"""The one count of spans lost anywhere on the write path, as a metric and in the log.

Every loss — the SDK queue full (``queue_full``), spans ended after shutdown
(``already_shutdown``), the exporter's buffer full while PostgreSQL is away
(``buffer_full``), spans PostgreSQL refused (``rejected``) or that could not be converted
(``unconverted``), spans still buffered at shutdown (``shutdown``), spans OTLP ingest
refused (``ingest_rejected``; the sender is told too, in ``partial_success``) — goes through
``record``: it adds to the OTel counter ``tracing.spans.dropped`` (attribute ``reason``)
and is logged with its number. Losses come in bursts, span by span: they are logged at
most once a second per reason, and whatever is pending is logged by ``report()`` (called
on flush and shutdown), so the numbers in the log add up to the metric exactly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from campus_core.observability.metrics import metrics

logger = logging.getLogger(__name__)

METRIC = "tracing.spans.dropped"
LOG_INTERVAL_SECONDS = 1.0


class DropRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def record(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        metrics.increment(METRIC, count, {"reason": reason})
        with self._lock:
            self.total[reason] += count
            self._pending[reason] += count
            now = time.monotonic()
            if now - self._logged_at.get(reason, -LOG_INTERVAL_SECONDS) < LOG_INTERVAL_SECONDS:
                return
            self._logged_at[reason] = now
            pending = self._take(reason)
        self._log(reason, pending)

    def report(self) -> None:
        """Log every loss not logged yet."""
        with self._lock:
            pending = [(reason, self._take(reason)) for reason in list(self._pending)]
        for reason, count in pending:
            self._log(reason, count)

    def _take(self, reason: str) -> int:
        return self._pending.pop(reason, 0)

    def _log(self, reason: str, count: int) -> None:
        if count:
            logger.error(
                "tracing dropped %d spans (reason=%s); %d dropped for this reason in all",
                count,
                reason,
                self.total[reason],
            )


drops = DropRecorder()
