"""The web application and its command line."""
