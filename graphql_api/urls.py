"""URLs of the GraphQL endpoint."""

from django.urls import path

from graphql_api.schema import schema
from graphql_api.views import GraphQLView

urlpatterns = [
    path("graphql/", GraphQLView.as_view(schema=schema), name="graphql"),
]
