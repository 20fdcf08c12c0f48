"""Shared infrastructure of the Preflight services (no business logic)."""
