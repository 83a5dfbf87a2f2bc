"""App configuration of the delay server (C-72)."""

from django.apps import AppConfig


class DelayConfig(AppConfig):
    name = "channels.delay"
    # Django 5.2 labels must be identifiers; "delay" alone would clash too easily.
    label = "channels_delay"
    verbose_name = "Channels Delay"
    default_auto_field = "django.db.models.AutoField"
