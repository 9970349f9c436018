from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "campus_core.chat"
    label = "chat"
    verbose_name = "Chat"
