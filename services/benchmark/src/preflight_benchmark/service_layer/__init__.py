"""Use cases: planning from submission events, dispatching attempts, recording workers' results."""
