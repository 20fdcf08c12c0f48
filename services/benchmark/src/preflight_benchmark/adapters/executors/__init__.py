"""Executors: where workers run (a local subprocess, or a Kubernetes Job)."""
