"""The notifier's fixtures (preflight_testkit.notifier)."""

from preflight_testkit.notifier import (
    api,
    clock,
    make_notifier,
    notifier,
    routing_file,
    settings,
    smtp_server,
    webhook_receiver,
)

__all__ = [
    "api",
    "clock",
    "make_notifier",
    "notifier",
    "routing_file",
    "settings",
    "smtp_server",
    "webhook_receiver",
]
