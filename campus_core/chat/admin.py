"""The conversation viewer: conversations and their messages in the Django admin.

Each conversation links to its agent traces in the trace viewer (/admin/agent-traces/,
filtered by conversation); the viewer links back here. Messages are what users and the
agent said, so the admin shows them read-only.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from campus_core.chat.models import Conversation, Message


def traces_url(conversation_id: int) -> str:
    """The trace viewer filtered to one conversation (the viewer's own URL filter)."""
    return f"{reverse('agent_traces')}?{urlencode({'conversationId': conversation_id})}"


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "content")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "user", "created_at", "message_count", "traces_link")
    list_select_related = ("user",)
    search_fields = ("title", "messages__content")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "traces_link")
    fields = ("title", "user", "created_at", "traces_link")
    raw_id_fields = ("user",)
    inlines = (MessageInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description="messages", ordering="message_total")
    def message_count(self, obj: Conversation) -> int:
        return int(getattr(obj, "message_total", 0))

    @admin.display(description="agent traces")
    def traces_link(self, obj: Conversation) -> str:
        if obj.pk is None:
            return "-"
        return format_html(
            '<a class="agent-traces-link" href="{}">View traces in the trace viewer</a>',
            traces_url(obj.pk),
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "short_content", "created_at")
    list_filter = ("role",)
    list_select_related = ("conversation",)
    search_fields = ("content",)
    readonly_fields = ("conversation_link", "role", "content", "created_at")
    fields = readonly_fields

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]

    @admin.display(description="conversation")
    def conversation_link(self, obj: Message) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a class="agent-traces-link" href="{}">its traces</a>',
            reverse("admin:chat_conversation_change", args=[obj.conversation_id]),
            obj.conversation,
            traces_url(obj.conversation_id),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Messages come from chat turns; an admin-made one would have no trace behind it.
        return False
