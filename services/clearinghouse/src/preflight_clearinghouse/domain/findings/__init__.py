"""The findings registry: findings, their checks and dedup, the disclosure and embargo workflow,
the case record (aliases, references, credits), comments, attachments, SSVC decisions, package
queries, exports and imports."""
