from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_save

# Fields whose change can make an accepted API token unacceptable (graphql_api/token_cache).
_TOKEN_FIELDS = frozenset({"revoked_at", "scope", "key_digest", "user", "user_id"})
_USER_FIELDS = frozenset({"is_active", "is_staff"})


def _forget_tokens_on(fields: frozenset[str]) -> Any:
    def receiver(sender: Any, update_fields: Any = None, **kwargs: Any) -> None:
        from graphql_api.token_cache import forget_on_commit

        if update_fields is None or fields & set(update_fields):
            forget_on_commit()

    return receiver


class GraphqlApiConfig(AppConfig):
    name = "graphql_api"
    verbose_name = "GraphQL API"

    def ready(self) -> None:
        # In this process, at commit; other processes hear of it from the database's
        # notification (migration 0003), which also covers update() and raw SQL.
        for model, fields in (
            ("graphql_api.ApiToken", _TOKEN_FIELDS),
            (settings.AUTH_USER_MODEL, _USER_FIELDS),
        ):
            receiver = _forget_tokens_on(fields)
            post_save.connect(receiver, sender=model, weak=False)
            post_delete.connect(receiver, sender=model, weak=False)
