"""Finds provider plugins: the built-in table plus the ``switchyard.providers`` entry-point group.

Built-ins are import strings (resolved on first use, like uvicorn's implementation tables), so a
plugin that fails to import only breaks the configs that name it. A third-party package adds a
provider by declaring an entry point; no core file changes::

    [project.entry-points."switchyard.providers"]
    acme = "acme_switchyard:AcmeProvider"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from providers.base import Provider

ENTRY_POINT_GROUP = "switchyard.providers"

# every plugin name the gateway knows of; ``None`` marks one that ships with a later release
BUILTIN: dict[str, str | None] = {
    "openai": "providers.openai:OpenAIProvider",
    "mock": "providers.mock:MockProvider",
    "azure": "providers.azure:AzureProvider",
    "anthropic": "providers.anthropic:AnthropicProvider",
    "gemini": "providers.gemini:GeminiProvider",
    "cohere": "providers.cohere:CohereProvider",
    "replicate": "providers.replicate:ReplicateProvider",
    "mistral": "providers.mistral:MistralProvider",
    "perplexity": "providers.perplexity:PerplexityProvider",
    "xai": "providers.xai:XAIProvider",
    "together": "providers.together:TogetherProvider",
    "huggingface": "providers.huggingface:HuggingFaceProvider",
    "custom": "providers.custom:CustomProvider",
}


class ProviderNotInstalled(LookupError):
    pass


class Registry:
    def __init__(self) -> None:
        self._targets: dict[str, str | None] = dict(BUILTIN)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self._targets[ep.name] = ep.value
        self._loaded: dict[str, type[Provider]] = {}

    def names(self) -> list[str]:
        return sorted(self._targets)

    def get(self, name: str) -> type[Provider]:
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._targets:
            raise ProviderNotInstalled(f"unknown provider type '{name}'")
        target = self._targets[name]
        try:
            if target is None:
                raise ImportError(name)
            module_name, _, attr = target.partition(":")
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ProviderNotInstalled(
                f"provider type '{name}' is not installed in this build ({target or 'no module'}: {exc})"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ProviderNotInstalled(f"provider type '{name}' ({target}) is not a Provider subclass")
        self._loaded[name] = cls
        return cls

    def installed(self, name: str) -> bool:
        try:
            self.get(name)
        except ProviderNotInstalled:
            return False
        return True
