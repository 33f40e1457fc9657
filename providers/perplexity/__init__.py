"""Perplexity: the Agent API (default) or legacy Sonar chat completions, chosen by the ``api`` option.

- ``agent``: ``POST /v1/agent``, a strict Responses-shaped API, translated both ways (``agent_request``,
  ``agent_response``, ``agent_stream``).
- ``chat``: ``POST /chat/completions``, the shared OpenAI dialect with Sonar's quirks (``provider``).
"""

from providers.perplexity.provider import PerplexityProvider

__all__ = ["PerplexityProvider"]
