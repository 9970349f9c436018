"""URLs of the staff trace viewer (filled by the admin viewer)."""

urlpatterns: list = []
