from django.contrib import admin
from django.urls import include, path

from campus_core.chat.views import get_chatbot_response

urlpatterns = [
    path("get_chatbot_response/", get_chatbot_response, name="get_chatbot_response"),
    path("", include("trace_viewer.urls")),
    path("", include("graphql_api.urls")),
    path("admin/", admin.site.urls),
]
