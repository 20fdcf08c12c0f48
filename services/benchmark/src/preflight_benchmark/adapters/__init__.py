"""The outside world: database, topics, executors, gRPC, credentials."""
