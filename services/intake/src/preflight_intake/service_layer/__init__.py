"""The use cases, each one unit of work over the store."""
