"""The observed application's data: conversations, their messages, and the knowledge base."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class DocumentChunk(models.Model):
    """A piece of campus documentation the agent searches with PostgreSQL full-text search."""

    folder = models.CharField(max_length=64, db_index=True)
    title = models.CharField(max_length=200)
    content = models.TextField()
    # Filled by knowledge.refresh_search_vectors() whenever chunks are written.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        indexes = (GinIndex(fields=["search_vector"], name="chunk_search_gin"),)

    def __str__(self) -> str:
        return f"[{self.folder}] {self.title}"
