"""The worker: runs one attempt of one job with Inspect AI and reports its outcome."""
