"""The virtual-key index: SHA-256 -> key, for keys from YAML and keys created through the admin API.

``lookup`` is the ``Authenticator``'s ``virtual_lookup``: a dictionary lookup on the digest, confirmed
with ``hmac.compare_digest``, and no I/O (created keys are mirrored in memory by ``sync.CreatedKeys``).
"""

from __future__ import annotations

import fnmatch
import hmac
import re
from collections.abc import Iterable

from gateway.auth import Identity
from gateway.governance.config import KeySpec


class VirtualKey:
    """A key's settings plus what the request path needs ready-made (identity, model matcher)."""

    __slots__ = ("spec", "identity", "_models")

    def __init__(self, spec: KeySpec) -> None:
        self.spec = spec
        self.identity = Identity("virtual", name=spec.name, team=spec.team, policy=self)
        self._models = _matcher(spec.models)

    def may_use(self, model: str) -> bool:
        return self._models is None or self._models.match(model) is not None


def _matcher(patterns: tuple[str, ...] | None) -> re.Pattern[str] | None:
    if patterns is None:
        return None
    if not patterns:
        return re.compile(r"(?!)")  # an empty list allows nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class KeyStore:
    def __init__(self) -> None:
        self.static: dict[str, VirtualKey] = {}  # from YAML, by digest
        self.static_names: dict[str, VirtualKey] = {}
        self.created: dict[str, VirtualKey] = {}  # from the admin API, by digest
        self.created_names: dict[str, VirtualKey] = {}

    def configure(self, specs: Iterable[KeySpec]) -> None:
        keys = [VirtualKey(spec) for spec in specs]
        self.static = {k.spec.key_sha256: k for k in keys}
        self.static_names = {k.spec.name: k for k in keys}
        self.replace_created([k.spec for k in self.created_names.values()])  # a YAML key shadows its namesake

    def replace_created(self, specs: Iterable[KeySpec]) -> None:
        keys = [VirtualKey(spec) for spec in specs if spec.name not in self.static_names]
        self.created = {k.spec.key_sha256: k for k in keys}
        self.created_names = {k.spec.name: k for k in keys}

    @property
    def empty(self) -> bool:
        return not self.static and not self.created

    async def lookup(self, digest: str) -> Identity | None:
        key = self.static.get(digest) or self.created.get(digest)
        if key is None or not hmac.compare_digest(key.spec.key_sha256, digest):
            return None
        return key.identity

    def by_name(self, name: str) -> VirtualKey | None:
        return self.static_names.get(name) or self.created_names.get(name)

    def all(self) -> list[VirtualKey]:
        return list(self.static_names.values()) + list(self.created_names.values())
