"""Thin entry points: the service process, the worker and the reference model server."""
