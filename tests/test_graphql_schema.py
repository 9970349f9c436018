"""schema.graphql is the published contract: it must be exactly what the code exports."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command

SNAPSHOT = Path(__file__).resolve().parent.parent / "schema.graphql"
EXPORT = "python manage.py export_schema graphql_api.schema --path schema.graphql"


def test_schema_graphql_matches_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "schema.graphql"
    call_command("export_schema", "graphql_api.schema", path=str(fresh))
    exported = fresh.read_text(encoding="utf-8").strip()
    stored = SNAPSHOT.read_text(encoding="utf-8").strip() if SNAPSHOT.exists() else ""
    assert exported == stored, (
        f"schema.graphql and the schema in code disagree: run `{EXPORT}` and review the diff."
    )


def test_the_contract_names_are_in_the_schema() -> None:
    sdl = SNAPSHOT.read_text(encoding="utf-8")
    for name in (
        "traces(",
        "trace(id: ID!): Trace",
        "span(traceId: ID!, spanId: ID!): Span",
        "conversations(",
        "conversation(id: ID!): Conversation",
        "traceStats(filters: TraceFilter",
        "filterOptions: FilterOptions!",
        "rootSpan: Span",
        "selfDurationMs: Float!",
        "attribute(key: String!): JSON",
    ):
        assert name in sdl, name
