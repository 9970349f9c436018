"""Resources, service names and session ids (issue 12).

Rows stored before this were all written by this process's own exporter, so their
service is the in-process one: the columns are added with ``OTEL_SERVICE_NAME`` (as it is
set when migrating) as their default, which PostgreSQL records without rewriting the
tables, and the default is then set back to ''. Their session id is their conversation
id, as text. Existing statuses are kept: only new trace rows start as ``no_agent``.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0001_initial'),
        ('tracing', '0004_drop_oteltrace_has_root'),
    ]

    operations = [
        migrations.CreateModel(
            name='OTelResource',
            fields=[
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('service_name', models.CharField(blank=True, default='', max_length=200)),
                ('attributes', models.JSONField(default=dict)),
            ],
            options={
                'verbose_name': 'span resource',
            },
        ),
        migrations.AddField(
            model_name='otelspan',
            name='service_name',
            field=models.CharField(blank=True, default=settings.OTEL_SERVICE_NAME, max_length=200),
        ),
        migrations.AlterField(
            model_name='otelspan',
            name='service_name',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='oteltrace',
            name='service_name',
            field=models.CharField(blank=True, db_default=settings.OTEL_SERVICE_NAME, max_length=200),
        ),
        migrations.AlterField(
            model_name='oteltrace',
            name='service_name',
            field=models.CharField(blank=True, db_default='', max_length=200),
        ),
        migrations.AddField(
            model_name='oteltrace',
            name='session_id',
            field=models.CharField(blank=True, db_default='', max_length=255),
        ),
        migrations.RunSQL(
            "UPDATE tracing_oteltrace SET session_id = conversation_id::text "
            "WHERE conversation_id IS NOT NULL",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='oteltrace',
            name='status',
            field=models.CharField(db_default='no_agent', max_length=32),
        ),
        migrations.AddIndex(
            model_name='oteltrace',
            index=models.Index(fields=['service_name', '-started_at', '-id'], name='trace_service_idx'),
        ),
        migrations.AddIndex(
            model_name='oteltrace',
            index=models.Index(fields=['session_id', '-started_at', '-id'], name='trace_session_idx'),
        ),
        migrations.AddField(
            model_name='otelspan',
            name='resource',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='tracing.otelresource'),
        ),
    ]
