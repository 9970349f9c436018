"""Statement triggers that announce, at commit, every change that can make an accepted API
token unacceptable (graphql_api/token_cache.py): a token revoked, re-scoped, re-keyed,
moved or deleted; a user deactivated, losing staff or deleted."""

from typing import Any

from django.conf import settings
from django.db import migrations

CHANNEL = "api_token_changed"  # token_cache.CHANNEL (a migration keeps its own copy)
FUNCTION = "graphql_api_announce_token_change"


def _triggers(user_table: str) -> list[tuple[str, str, str]]:
    return [
        (
            "graphql_api_apitoken_changed",
            "graphql_api_apitoken",
            "UPDATE OF revoked_at, scope, key_digest, user_id OR DELETE OR TRUNCATE",
        ),
        ("graphql_api_user_changed", user_table, "UPDATE OF is_active, is_staff OR DELETE"),
    ]


def create(apps: Any, schema_editor: Any) -> None:
    user_table = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
    schema_editor.execute(
        f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    for name, table, events in _triggers(user_table):
        schema_editor.execute(
            f"CREATE TRIGGER {name} AFTER {events} ON {schema_editor.quote_name(table)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def drop(apps: Any, schema_editor: Any) -> None:
    user_table = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
    for name, table, _ in _triggers(user_table):
        schema_editor.execute(f"DROP TRIGGER {name} ON {schema_editor.quote_name(table)}")
    schema_editor.execute(f"DROP FUNCTION {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        ("graphql_api", "0002_api_token_scope"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create, drop)]
