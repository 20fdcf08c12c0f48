"""Preflight intake: labs submit model versions for pre-release review (see services/intake/README.md)."""
