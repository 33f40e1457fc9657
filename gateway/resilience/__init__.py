"""Resilience: circuit breakers, retries and back-off."""
