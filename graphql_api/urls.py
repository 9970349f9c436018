"""URLs of the GraphQL endpoint (filled by the read path)."""

urlpatterns: list = []
