"""Who is calling: the master key, or (with governance) a virtual key.

Keys arrive as ``Authorization: Bearer <key>`` and are compared in constant time
(``hmac.compare_digest`` over fixed-length SHA-256 digests, so neither content nor length leaks).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str  # "master" | "virtual" | "anonymous"
    name: str | None = None
    team: str | None = None
    policy: Any = field(default=None, compare=False)  # governance's per-key settings, when virtual

    @property
    def is_master(self) -> bool:
        return self.kind == "master"


ANONYMOUS = Identity("anonymous")
MASTER = Identity("master", name="master")


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class Authenticator:
    """Checks the master key; governance plugs virtual keys in through ``virtual_lookup``."""

    def __init__(self, master_key: str, virtual_lookup=None) -> None:
        self._master_digest = hashlib.sha256(master_key.encode()).digest() if master_key else None
        self._virtual_lookup = virtual_lookup  # async (sha256 hex) -> Identity | None

    @property
    def open_v1(self) -> bool:
        """No key configured at all: /v1 is open (the CLI warns loudly at start-up)."""
        return self._master_digest is None and self._virtual_lookup is None

    @property
    def has_master(self) -> bool:
        return self._master_digest is not None

    def is_master_digest(self, digest_hex: str) -> bool:
        """Whether a SHA-256 (hex) is the master key's (so a created key can never equal it)."""
        if self._master_digest is None:
            return False
        return hmac.compare_digest(bytes.fromhex(digest_hex), self._master_digest)

    async def identify(self, token: str | None) -> Identity | None:
        if token is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        if self._master_digest is not None and hmac.compare_digest(digest, self._master_digest):
            return MASTER
        if self._virtual_lookup is not None:
            return await self._virtual_lookup(digest.hex())
        return None
