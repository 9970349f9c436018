"""Span rollups (tracing/rollups.py): the rollup, rolled-period and dirty-hour tables.

Every hour that already holds spans is marked dirty, so the first refresh (the maintenance
thread, within a minute of start-up) rolls up the stored history; until then, and for any
period not rolled, readers read the spans.
"""

import django.contrib.postgres.fields
from django.db import migrations, models

BACKFILL = (
    "INSERT INTO tracing_spanrollupdirty (hour) "
    "SELECT DISTINCT date_trunc('hour', started_at, 'UTC') FROM tracing_otelspan"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0007_partition_spans_by_day"),
    ]

    operations = [
        migrations.CreateModel(
            name="SpanRollupRolled",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "width",
                        "start",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("start", models.DateTimeField()),
                ("width", models.SmallIntegerField()),
            ],
            options={
                "verbose_name": "rolled-up span period",
            },
        ),
        migrations.CreateModel(
            name="SpanRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("start", models.DateTimeField()),
                ("width", models.SmallIntegerField()),
                ("kind", models.CharField(max_length=32)),
                ("name", models.CharField(max_length=500)),
                ("model", models.CharField(max_length=200, null=True)),
                ("tool_name", models.CharField(max_length=200, null=True)),
                ("status_code", models.CharField(max_length=8)),
                ("span_count", models.BigIntegerField()),
                ("input_tokens", models.BigIntegerField()),
                ("output_tokens", models.BigIntegerField()),
                ("duration_min", models.FloatField()),
                ("duration_max", models.FloatField()),
                (
                    "duration_buckets",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.SmallIntegerField(), size=None
                    ),
                ),
                (
                    "duration_counts",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.IntegerField(), size=None
                    ),
                ),
            ],
            options={
                "verbose_name": "span rollup",
                "indexes": [models.Index(fields=["width", "start"], name="spanrollup_start_idx")],
            },
        ),
        migrations.CreateModel(
            name="SpanRollupDirty",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField()),
            ],
            options={
                "verbose_name": "dirty span hour",
                "indexes": [models.Index(fields=["hour"], name="spanrollup_dirty_hour_idx")],
            },
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
