"""The span table becomes partitioned by day of ``started_at`` (see tracing/partitions.py).

An existing installation is converted in place, in one transaction (ingest waits on the
table lock; the exporter's buffer holds its spans meanwhile): the table is renamed, a
partitioned table with the same columns is created (``LIKE``, so columns other migrations
added come along), day partitions for every day that holds spans (up to a year back; older
spans go to the DEFAULT partition) and for the coming days are created, the rows are
copied, then the keys and indexes are built once over the loaded partitions. Measured cost
per million spans: benchmarks/RESULTS.md ("Months of traces").

Keys: a unique key on a partitioned table must contain the partition column, so the
primary key is ``(trace_id, span_id, started_at)`` (named like the old unique constraint).
A re-sent span carries the same start, so it still conflicts. ``id`` stays (the ORM's key,
from a sequence, as PostgreSQL 15 has no identity columns on partitioned tables) but loses
its index: nothing looks spans up by id. The jsonb columns are compressed with lz4 when the
server supports it.

No foreign key from spans to traces in the database (Django still knows the relation, with
``db_constraint=False``): on a partitioned span table, every trace row the prune deletes
made PostgreSQL probe every remaining day partition for referencing spans (105,860 traces
took 118 s, against 9.6 s for a plain DELETE of the same rows, see benchmarks/RESULTS.md),
and every stored span paid a lookup and a row lock on its trace. The exporter writes a
span's trace row in the same transaction as the span, and the prune removes a run's spans
before its trace row.

Reversible: the reverse copies the rows back into an unpartitioned table shaped as before
(foreign key included).
"""

from datetime import UTC, datetime, timedelta

import django.db.models.deletion
from django.db import migrations, models

from tracing.partitions import DAYS_AHEAD, DEFAULT_PARTITION, SPAN_TABLE, create_day

OLD = f"{SPAN_TABLE}_unpartitioned"
SEQ = f"{SPAN_TABLE}_id_seq"
JSON_COLUMNS = ("attributes", "events")
# Days further back than this go to the DEFAULT partition rather than getting their own.
BACKFILL_DAYS = 366
# Django's name for the span -> trace foreign key (0001_initial).
TRACE_FK = "tracing_otelspan_trace_id_e22dc84e_fk_tracing_oteltrace_id"


def _carried_over(cur, table):
    """Statements re-creating ``table``'s foreign keys and plain indexes on SPAN_TABLE
    (those Django or other migrations added); keys on id / (trace_id, span_id) are
    replaced, not carried."""
    cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' "
        "AND confrelid <> 'tracing_oteltrace'::regclass",
        (table,),
    )
    fks = [f'ALTER TABLE "{SPAN_TABLE}" ADD CONSTRAINT "{n}" {d}' for n, d in cur.fetchall()]
    cur.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary "
        "AND c.relname <> 'span_unique_in_trace'",
        (table,),
    )
    other_unique = [name for (name,) in cur.fetchall()]
    if other_unique:
        # A unique key without started_at cannot exist on the partitioned table.
        raise RuntimeError(f"unique indexes on the span table to redesign first: {other_unique}")
    cur.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT i.indisunique",
        (table,),
    )
    indexes = []
    for name, definition in cur.fetchall():
        cur.execute(f'DROP INDEX "{name}"')  # index names are schema-wide
        on = definition.index(" ON ")
        using = definition.index(" USING ")
        indexes.append(f"{definition[:on]} ON {SPAN_TABLE}{definition[using:]}")
    return fks, indexes


def _lz4(cur):
    cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    row = cur.fetchone()
    return bool(row and row[0])


def partition(apps, schema_editor):
    """The foreign key to the trace table is not carried over (see the module docstring)."""
    conn = schema_editor.connection
    conn.ensure_connection()
    with conn.connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (SPAN_TABLE,))
        if cur.fetchone()[0] == "p":
            return
        cur.execute(f'LOCK TABLE "{SPAN_TABLE}" IN ACCESS EXCLUSIVE MODE')
        cur.execute(f'ALTER TABLE "{SPAN_TABLE}" RENAME TO "{OLD}"')
        fks, indexes = _carried_over(cur, OLD)
        cur.execute(f'SELECT coalesce(max(id), 0) FROM "{OLD}"')
        last_id = cur.fetchone()[0]
        cur.execute(f'ALTER TABLE "{OLD}" ALTER COLUMN id DROP IDENTITY IF EXISTS')
        cur.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT IF EXISTS "{OLD}_pkey"')
        cur.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT IF EXISTS "{SPAN_TABLE}_pkey"')
        cur.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT IF EXISTS "span_unique_in_trace"')
        cur.execute(
            f'CREATE TABLE "{SPAN_TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            "INCLUDING COMPRESSION INCLUDING STORAGE) PARTITION BY RANGE (started_at)"
        )
        cur.execute(f'CREATE SEQUENCE "{SEQ}" OWNED BY "{SPAN_TABLE}".id')
        if last_id:
            cur.execute("SELECT setval(%s, %s)", (SEQ, last_id))
        cur.execute(f"ALTER TABLE \"{SPAN_TABLE}\" ALTER COLUMN id SET DEFAULT nextval('{SEQ}')")
        if _lz4(cur):
            for column in JSON_COLUMNS:
                cur.execute(f'ALTER TABLE "{SPAN_TABLE}" ALTER COLUMN {column} SET COMPRESSION lz4')
        cur.execute(f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF "{SPAN_TABLE}" DEFAULT')
        today = datetime.now(UTC).date()
        cur.execute(
            f"SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM \"{OLD}\" "
            "WHERE started_at >= %s AND started_at < %s",
            (today - timedelta(days=BACKFILL_DAYS), today + timedelta(days=DAYS_AHEAD + 1)),
        )
        days = {day for (day,) in cur.fetchall()}
        days.update(today + timedelta(days=n) for n in range(-1, DAYS_AHEAD + 1))
        for day in sorted(days):
            create_day(cur, day)
        cur.execute(f'INSERT INTO "{SPAN_TABLE}" SELECT * FROM "{OLD}"')
        cur.execute(f'DROP TABLE "{OLD}"')
        cur.execute(
            f'ALTER TABLE "{SPAN_TABLE}" ADD CONSTRAINT "span_unique_in_trace" '
            "PRIMARY KEY (trace_id, span_id, started_at)"
        )
        for statement in (*indexes, *fks):
            cur.execute(statement)


def unpartition(apps, schema_editor):
    conn = schema_editor.connection
    conn.ensure_connection()
    with conn.connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (SPAN_TABLE,))
        if cur.fetchone()[0] != "p":
            return
        cur.execute(f'LOCK TABLE "{SPAN_TABLE}" IN ACCESS EXCLUSIVE MODE')
        cur.execute(f'ALTER TABLE "{SPAN_TABLE}" RENAME TO "{OLD}"')
        fks, indexes = _carried_over(cur, OLD)
        cur.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT "span_unique_in_trace"')
        cur.execute(f'SELECT coalesce(max(id), 0) FROM "{OLD}"')
        last_id = cur.fetchone()[0]
        cur.execute(f'ALTER TABLE "{OLD}" ALTER COLUMN id DROP DEFAULT')
        cur.execute(
            f'CREATE TABLE "{SPAN_TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            "INCLUDING COMPRESSION INCLUDING STORAGE)"
        )
        cur.execute(f'INSERT INTO "{SPAN_TABLE}" SELECT * FROM "{OLD}"')
        cur.execute(f'DROP TABLE "{OLD}" CASCADE')  # its partitions and sequence with it
        cur.execute(
            f'ALTER TABLE "{SPAN_TABLE}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY'
        )
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{SPAN_TABLE}', 'id'), %s, %s)",
            (max(last_id, 1), last_id > 0),
        )
        cur.execute(f'ALTER TABLE "{SPAN_TABLE}" ADD PRIMARY KEY (id)')
        cur.execute(
            f'ALTER TABLE "{SPAN_TABLE}" ADD CONSTRAINT "span_unique_in_trace" '
            "UNIQUE (trace_id, span_id)"
        )
        for statement in (*indexes, *fks):
            cur.execute(statement)
        cur.execute(
            f'ALTER TABLE "{SPAN_TABLE}" ADD CONSTRAINT "{TRACE_FK}" FOREIGN KEY (trace_id) '
            "REFERENCES tracing_oteltrace (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0006_span_search_columns"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="otelspan",
                    name="trace",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="spans",
                        to="tracing.oteltrace",
                    ),
                ),
                migrations.RemoveConstraint(model_name="otelspan", name="span_unique_in_trace"),
                migrations.AddConstraint(
                    model_name="otelspan",
                    constraint=models.UniqueConstraint(
                        fields=("trace", "span_id", "started_at"), name="span_unique_in_trace"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(partition, unpartition)],
        ),
    ]
