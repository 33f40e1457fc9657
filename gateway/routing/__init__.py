"""Routing: which deployment of a model group serves the next attempt."""
