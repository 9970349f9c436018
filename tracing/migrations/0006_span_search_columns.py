"""Promoted span columns for span search (kind, model, tool_name, input/output tokens),
backfilled from the stored attributes by the row builder's own ``promoted_values``, then
the search indexes, built CONCURRENTLY so the exporter keeps writing meanwhile; the
(trace_id, started_at) index goes (the unique (trace_id, span_id) index serves reads by
trace).

Not atomic: each backfill batch commits on its own (run again after a failure, it
rewrites the rows already done with the same values). Adding the columns is
instant (constant defaults, no table rewrite); the backfill rewrites every span row once
(see benchmarks/RESULTS.md for its speed per million rows).
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

BATCH = 10_000

_SELECT = """
    SELECT id, name, span_kind, attributes::text FROM tracing_otelspan
    WHERE id > %s ORDER BY id LIMIT %s
"""
_UPDATE = """
    UPDATE tracing_otelspan AS s
    SET kind = v.kind, model = v.model, tool_name = v.tool_name,
        input_tokens = v.input_tokens, output_tokens = v.output_tokens
    FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[], %s::bigint[],
                %s::bigint[]) AS v(id, kind, model, tool_name, input_tokens, output_tokens)
    WHERE s.id = v.id
"""


def backfill(apps: Any, schema_editor: Any) -> None:
    import orjson

    from tracing.conventions import semconv
    from tracing.export.rows import promoted_values

    connection = schema_editor.connection
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_SELECT, (last, BATCH))
            rows = cursor.fetchall()
            if not rows:
                return
            columns: list[list[Any]] = [[] for _ in range(6)]
            for span_id, name, span_kind, attributes in rows:
                values = promoted_values(
                    semconv.span_facts(name, orjson.loads(attributes), span_kind)
                )
                columns[0].append(span_id)
                for column, value in zip(columns[1:], values, strict=True):
                    column.append(value)
            cursor.execute(_UPDATE, columns)
            last = rows[-1][0]


def _index(fields: list[str], name: str, **options: Any) -> AddIndexConcurrently:
    return AddIndexConcurrently(
        model_name="otelspan", index=models.Index(fields=fields, name=name, **options)
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tracing", "0005_otel_resources_services_sessions"),
    ]

    operations = [
        migrations.AddField(
            model_name="otelspan",
            name="kind",
            field=models.CharField(db_default="other", max_length=32),
        ),
        migrations.AddField(
            model_name="otelspan",
            name="model",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AddField(
            model_name="otelspan",
            name="tool_name",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AddField(
            model_name="otelspan",
            name="input_tokens",
            field=models.BigIntegerField(db_default=0),
        ),
        migrations.AddField(
            model_name="otelspan",
            name="output_tokens",
            field=models.BigIntegerField(db_default=0),
        ),
        # The unique (trace_id, span_id) index serves reads by trace; this one B-tree fewer
        # pays for part of the search indexes on the write path.
        RemoveIndexConcurrently(model_name="otelspan", name="span_trace_start_idx"),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        # Covering the columns span aggregates read (tracing.models.STATS_INCLUDE, spelled
        # out: a migration does not change with the model).
        _index(
            ["-started_at", "-id"],
            "span_started_idx",
            include=[
                "duration_ms",
                "status_code",
                "input_tokens",
                "output_tokens",
                "kind",
                "model",
                "tool_name",
                "name",
            ],
        ),
        _index(
            ["model", "-started_at", "-id"],
            "span_model_started_idx",
            condition=models.Q(model__isnull=False),
        ),
        _index(
            ["tool_name", "-started_at", "-id"],
            "span_tool_started_idx",
            condition=models.Q(tool_name__isnull=False),
        ),
        _index(
            ["-started_at", "-id"],
            "span_error_started_idx",
            condition=models.Q(status_code="ERROR"),
        ),
    ]
