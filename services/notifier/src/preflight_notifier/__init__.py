"""Preflight notifier: deadlines, threshold alerts, the alerts topic, webhooks and e-mail."""
