"""API tokens: ``Authorization: Bearer <token>``, scoped to reading or to ingesting.

A ``read`` token (the default) queries ``/graphql/``; an ``ingest`` token may only send spans
to ``POST /v1/traces`` (tracing/ingest/). Neither works on the other's endpoint. A token is
shown once, when created; only its SHA-256 digest is stored. Tokens are random (256 bits),
so a fast digest is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "cct_"
# A token's last_used_at is written at most this often: a dashboard polling every few
# seconds, or a service exporting spans, does not turn every request into a write.
LAST_USED_EVERY = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenScope(models.TextChoices):
    """What a token may do: read through /graphql/, or write spans through /v1/traces."""

    READ = "read"
    INGEST = "ingest"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)

    def authenticate(self, secret: str) -> ApiToken | None:
        """The active token of an active staff user with this secret (any scope), else None.

        ``last_used_at`` is refreshed at most once per ``LAST_USED_EVERY``."""
        token = self.active().select_related("user").filter(key_digest=digest(secret)).first()
        if token is None or not token.user.is_active or not token.user.is_staff:
            return None
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token


class ApiToken(models.Model):
    """A revocable bearer token bound to one staff user: with scope ``read`` it grants what
    that user may read; with scope ``ingest``, only writing spans."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    # First characters of the token, to tell tokens apart without storing them.
    prefix = models.CharField(max_length=16)
    key_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(
        max_length=16, choices=TokenScope.choices, default=TokenScope.READ, db_default="read"
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.prefix}… ({self.user}, {self.scope}, {state})"

    @classmethod
    def issue(cls, user: Any, name: str = "", scope: str = TokenScope.READ) -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns the row and the only copy of the secret."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=secret[:12],
            key_digest=digest(secret),
            scope=TokenScope(scope),
        )
        return token, secret

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])  # forgotten by the token cache at commit
