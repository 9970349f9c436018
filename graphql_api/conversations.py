"""``Conversation`` and ``Message`` types, ``conversations`` and ``conversation(id)``."""

from __future__ import annotations

from datetime import datetime

import strawberry
import strawberry_django
from strawberry_django.relay import DjangoCursorConnection

from campus_core.chat.models import Conversation, Message
from graphql_api.errors import parse_int_id
from graphql_api.pagination import MAX_PAGE_SIZE, BoundedPageMixin
from graphql_api.permissions import staff_only
from graphql_api.traces.types import TraceType


@strawberry_django.type(Message, name="Message", description="One chat message.")
class MessageType:
    id: strawberry.ID
    role: str = strawberry_django.field(description="user | assistant")
    content: str
    created_at: datetime


@strawberry_django.type(
    Conversation, name="Conversation", description="A chat conversation and its agent runs."
)
class ConversationType:
    id: strawberry.ID
    title: str
    created_at: datetime
    messages: list[MessageType] = strawberry_django.field(description="Ordered by time.")
    # strawberry-django's own connection class, so its optimizer pages every
    # conversation's runs in one window-function query (a subclass would not be recognised).
    traces: DjangoCursorConnection[TraceType] = strawberry_django.connection(  # type: ignore[type-var]
        description=(
            f"The agent runs of this conversation, newest first (at most {MAX_PAGE_SIZE} per page)."
        )
    )

    @classmethod
    def resolve_id_attr(cls) -> str:
        # See TraceType.resolve_id_attr: needed by the root connection resolver.
        return "id"


@strawberry.type(name="ConversationConnection", description="A page of conversations.")
class ConversationConnection(BoundedPageMixin, DjangoCursorConnection[ConversationType]):  # type: ignore[type-var]
    pass


@strawberry.type
class Query:
    conversations: ConversationConnection = strawberry_django.connection(
        description="Conversations, newest first; keyset-paginated.",
        extensions=staff_only(),
    )

    @strawberry_django.field(
        description="One conversation by id; null when unknown.", extensions=staff_only()
    )
    def conversation(self, id: strawberry.ID) -> ConversationType | None:
        return Conversation.objects.filter(pk=parse_int_id(str(id), "conversation"))  # type: ignore[return-value]
