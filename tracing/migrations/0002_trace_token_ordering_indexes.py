"""Indexes for ordering traces by tokens (input, output, input + output).

Built CONCURRENTLY, so applying this to a large live database does not block the exporter's
writes (hence a non-atomic migration).
"""

import django.db.models.expressions
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tracing", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="oteltrace",
            index=models.Index(
                fields=["total_input_tokens", "id"], name="trace_input_tokens_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="oteltrace",
            index=models.Index(
                fields=["total_output_tokens", "id"], name="trace_output_tokens_idx"
            ),
        ),
        AddIndexConcurrently(
            model_name="oteltrace",
            index=models.Index(
                django.db.models.expressions.CombinedExpression(
                    models.F("total_input_tokens"), "+", models.F("total_output_tokens")
                ),
                models.F("id"),
                name="trace_total_tokens_idx",
            ),
        ),
    ]
