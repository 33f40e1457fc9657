"""OpenAI: the reference provider (see docs/providers.md for a walk through it).

Everything is the shared OpenAI dialect; OpenAI itself only adds its optional organisation and
project headers.
"""

from __future__ import annotations

from providers.base import OptionSpec
from providers.openai_compat import OpenAICompatProvider


class OpenAIProvider(OpenAICompatProvider):
    type_name = "openai"
    default_api_base = "https://api.openai.com/v1"
    options = {
        "organization": OptionSpec(str, None, "sent as OpenAI-Organization"),
        "project": OptionSpec(str, None, "sent as OpenAI-Project"),
    }

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.config.option("organization"):
            headers["openai-organization"] = self.config.option("organization")
        if self.config.option("project"):
            headers["openai-project"] = self.config.option("project")
        return headers
