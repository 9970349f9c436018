"""The promoted span columns (kind, model, tool_name, input/output tokens): the synthetic
seeder writes them through the row builder as the exporter does, and migration 0006's
backfill recomputes them for rows stored before the columns existed.

The seeder commits through its own connection, hence ``transactional_db``.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from tracing.conventions import semconv
from tracing.models import OTelSpan

pytestmark = pytest.mark.django_db(transaction=True)

PROMOTED = ("kind", "model", "tool_name", "input_tokens", "output_tokens")
backfill_migration = importlib.import_module("tracing.migrations.0006_span_search_columns")


def _promoted() -> dict[int, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in OTelSpan.objects.values_list("id", *PROMOTED)}


def test_seeded_spans_carry_the_classifiers_facts() -> None:
    call_command("seed_traces", "--traces", "60", "--seed", "5", "--no-vacuum")
    spans = list(OTelSpan.objects.all())
    assert len(spans) > 400
    for span in spans:
        facts = semconv.span_facts(span.name, span.attributes, span.span_kind)
        assert (span.kind, span.model, span.tool_name) == (
            facts.category.value,
            facts.model,
            facts.tool_name,
        ), span.name
        assert (span.input_tokens, span.output_tokens) == (facts.input_tokens, facts.output_tokens)
    kinds = {span.kind for span in spans}
    assert {"agent", "llm", "tool", "database", "http"} <= kinds
    assert any(span.model for span in spans if span.kind == "llm")
    assert sum(span.input_tokens for span in spans) > 0


def test_the_backfill_restores_every_promoted_column(monkeypatch: pytest.MonkeyPatch) -> None:
    call_command("seed_traces", "--traces", "40", "--seed", "6", "--no-vacuum")
    written = _promoted()
    assert len(written) > 250
    # Rows as they were before migration 0006: the column defaults.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracing_otelspan SET kind = 'other', model = NULL, tool_name = NULL, "
            "input_tokens = 0, output_tokens = 0"
        )
    assert set(_promoted().values()) == {("other", None, None, 0, 0)}
    monkeypatch.setattr(backfill_migration, "BATCH", 37)  # several batches, a partial last
    backfill_migration.backfill(None, SimpleNamespace(connection=connection))
    assert _promoted() == written
