"""Resilience: circuit breakers per deployment, local or shared by every replica through Redis.

``breaker`` (the state machine), ``circuits`` (the ``Health`` the pipeline asks), ``shared`` and ``lua``
(the Redis side), ``wiring`` (how the app keeps them across reloads). Retries and fallbacks are in
``gateway.attempts``. See docs/routing.md.
"""
