"""The services' gRPC APIs, called with the signed-in user's own token."""
