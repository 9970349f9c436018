"""The GraphQL request context: the Django request (whose ``user`` is the session user or
the API token's user) and this request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import HttpRequest, HttpResponse
from strawberry.django.context import StrawberryDjangoContext
from strawberry.types import Info

from graphql_api.dataloaders import Loaders


@dataclass
class Context(StrawberryDjangoContext):
    loaders: Loaders = field(default_factory=Loaders)


def build_context(request: HttpRequest, response: HttpResponse | None = None) -> Context:
    return Context(request=request, response=response or HttpResponse())


def loaders(info: Info) -> Loaders:
    context = info.context
    if not isinstance(context, Context):
        raise TypeError("the GraphQL context must be graphql_api.context.Context")
    return context.loaders
