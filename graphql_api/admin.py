"""API tokens in the Django admin: see who has one, when it was last used, revoke it.

Tokens are created with ``manage.py create_api_token`` (the secret is printed once);
the admin never shows or stores a secret.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from graphql_api.models import ApiToken
from graphql_api.token_cache import forget_on_commit


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at", "revoked_at")
    exclude = ("key_digest",)
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        forget_on_commit()  # an update() sends no signal
        self.message_user(request, f"Revoked {count} token(s).")

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoke, keep the record of use
        return actions
