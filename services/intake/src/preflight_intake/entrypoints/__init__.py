"""Thin entry points: the server process, the consumed topics' routes, the admin CLI."""
