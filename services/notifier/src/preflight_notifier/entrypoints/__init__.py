"""Thin entry points: command line, Kafka agents, gRPC server."""
