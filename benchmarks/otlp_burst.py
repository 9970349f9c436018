"""The client side of bench_otlp: sender processes, each with threads holding the stock
``OTLPSpanExporter``, and the count of the 503s they met."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class Count503(logging.Handler):
    """Counts the stock exporter's "retrying" warnings caused by 503 answers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "Service Unavailable" in record.getMessage():
            with self._lock:
                self.count += 1


def _sender(
    url: str, secret: str, batches: list[list[Any]], threads: int, results: Any, go: Any
) -> None:
    """One sender process: ``threads`` stock exporters taking batches from ``batches``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    counter = Count503()
    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").addHandler(counter)
    lock = threading.Lock()
    next_batch = iter(range(len(batches)))
    failed: list[int] = []

    def worker() -> None:
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=120,
        )
        while True:
            with lock:
                index = next(next_batch, None)
            if index is None:
                break
            if exporter.export(batches[index]) is not SpanExportResult.SUCCESS:
                with lock:
                    failed.append(index)
        exporter.shutdown()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    go.wait()
    cpu = time.process_time()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put((time.process_time() - cpu, len(failed), counter.count))


def send_burst(
    url: str, secret: str, spans: list[Any], batch: int, threads: int, processes: int = 1
) -> dict[str, Any]:
    """The burst: ``processes`` sender processes (forked: they share the spans made before
    timing), each with ``threads`` threads, taking batches round-robin."""
    import multiprocessing

    batches = [spans[i : i + batch] for i in range(0, len(spans), batch)]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    go = context.Event()
    senders = [
        context.Process(
            target=_sender, args=(url, secret, batches[n::processes], threads, results, go)
        )
        for n in range(processes)
    ]
    for sender in senders:
        sender.start()
    time.sleep(0.5)  # every sender ready and waiting
    started = time.perf_counter()
    go.set()
    reports = [results.get() for _ in senders]
    elapsed = time.perf_counter() - started
    for sender in senders:
        sender.join()
    return {
        "seconds": elapsed,
        "client_cpu": sum(cpu for cpu, _, _ in reports),
        "requests": len(batches),
        "failed_batches": sum(failed for _, failed, _ in reports),
        "answered_503": sum(count for _, _, count in reports),
    }
