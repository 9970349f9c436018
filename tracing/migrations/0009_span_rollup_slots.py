"""Span rollups in 5-minute slots (tracing/rollups.py): the slot rows and the hours whose
slots are complete.

Nothing is re-aggregated here: an hour without slots reads its partial edges from the
spans as before; the refresh (the maintenance thread) writes the slots of every hour it
re-aggregates, and of the hours rolled before this migration when it has nothing else to
do, a day's worth per transaction, newest first.
"""

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0008_span_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="SpanRollupSlotted",
            fields=[
                ("hour", models.DateTimeField(primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "span hour rolled in 5-minute slots",
            },
        ),
        migrations.CreateModel(
            name="SpanRollupSlot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("start", models.DateTimeField()),
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
                "verbose_name": "span rollup slot",
                "indexes": [models.Index(fields=["start"], name="spanrollupslot_start_idx")],
            },
        ),
    ]
