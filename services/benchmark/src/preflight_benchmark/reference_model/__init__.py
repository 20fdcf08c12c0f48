"""A scripted OpenAI-compatible chat-completions server: the stand-in for a lab's endpoint."""
