"""The console's use of the services' APIs on behalf of the signed-in user."""
