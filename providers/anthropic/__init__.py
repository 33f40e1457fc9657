"""The Anthropic provider (plugin ``anthropic``): OpenAI chat <-> Anthropic Messages API.

    provider.py   the plugin class: options, headers, URLs, model list
    messages.py   OpenAI messages -> Anthropic system + alternating turns
    request.py    the rest of the request body (sampling, tools, formats, unsupported fields)
    response.py   message -> chat.completion; finish_reason and usage tables
    stream.py     named-event SSE -> chat.completion.chunk frames
    errors.py     Anthropic errors -> the gateway's taxonomy
"""

from providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
