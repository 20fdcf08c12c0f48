"""Preflight console: the web application of reviewers, operators and labs."""
