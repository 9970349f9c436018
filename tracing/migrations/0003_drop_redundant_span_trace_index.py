"""Drop the single-column index Django made for OTelSpan.trace: the unique
(trace_id, span_id) index already serves lookups by trace. Only the index goes; the foreign
key stays as it is (Django's own AlterField would drop and re-validate it over every span)."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "tracing_otelspan_trace_id_e22dc84e"


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0002_trace_token_ordering_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="otelspan",
                    name="trace",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="spans",
                        to="tracing.oteltrace",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "tracing_otelspan" ("trace_id")',
                ),
            ],
        ),
    ]
