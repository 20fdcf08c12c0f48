"""Thin entry points: the server process, the faust agents, the admin CLI."""
