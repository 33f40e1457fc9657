"""The governance sections of the config: ``keys``, ``teams``, ``policies`` and ``audit``.

``parse_governance(root, state_backend)`` reads them from the root ``Section`` (unknown keys are errors
with a did-you-mean, like every other section) and returns a frozen ``GovernanceConfig``. A key given
in plaintext (``key: ${ENV_VAR}``) is hashed here and never kept. ``key_spec`` also validates keys
created through ``POST /admin/keys``, so both paths accept exactly the same fields.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.config_reader import Section, suggest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
PERIODS = ("day", "month")
SINK_TYPES = ("file", "redis_stream")
NANOS_PER_USD = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: str = "month"  # "day" | "month", UTC

    @property
    def nanos(self) -> int:
        return round(self.usd * NANOS_PER_USD)

    def as_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "period": self.period}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A virtual key's settings (from YAML, or created through the admin API)."""

    name: str
    key_sha256: str  # lowercase hex
    team: str | None = None
    models: tuple[str, ...] | None = None  # glob patterns; None: every model
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget | None = None
    max_tokens: int | None = None
    source: str = "config"  # "config" | "admin"
    created_at: int | None = None

    def public(self) -> dict[str, Any]:
        """What the admin API may show: everything but the secret (and its hash)."""
        return {"name": self.name, "team": self.team, "models": list(self.models) if self.models is not None else None,
                "rpm": self.rpm, "tpm": self.tpm, "budget": self.budget.as_dict() if self.budget else None,
                "max_tokens": self.max_tokens, "source": self.source, "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class TeamSpec:
    name: str
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    pattern: re.Pattern[str]
    action: str  # "deny" | "redact"
    replacement: str = "[redacted]"
    keys: frozenset[str] | None = None  # selectors; None: everyone
    teams: frozenset[str] | None = None

    def applies_to(self, key_name: str | None, team: str | None) -> bool:
        if self.keys is None and self.teams is None:
            return True
        return bool((self.keys is not None and key_name in self.keys)
                    or (self.teams is not None and team in self.teams))


@dataclass(frozen=True, slots=True)
class SinkSpec:
    type: str  # "file" | "redis_stream"
    path: str = "./audit/audit.jsonl"
    rotate_mb: float = 100.0
    keep: int = 10
    stream: str = "switchyard:audit"
    maxlen: int = 1_000_000
    buffer: int = 100_000  # records held in memory while the sink is failing


@dataclass(frozen=True, slots=True)
class AuditConfig:
    sinks: tuple[SinkSpec, ...] = ()
    include_bodies: bool = False


@dataclass(frozen=True, slots=True)
class GovernanceConfig:
    keys: tuple[KeySpec, ...] = ()
    teams: dict[str, TeamSpec] = field(default_factory=dict)
    policies: tuple[PolicySpec, ...] = ()
    audit: AuditConfig = AuditConfig()


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_governance(root: Section, state_backend: str = "memory", master_key: str = "") -> GovernanceConfig:
    teams = _teams(root.section("teams"))
    keys = _keys(root, teams, master_key)
    policies = _policies(root, teams)
    audit = _audit(root.section("audit"), state_backend)
    return GovernanceConfig(keys=tuple(keys), teams=teams, policies=tuple(policies), audit=audit)


def _budget(s: Section) -> Budget | None:
    usd = s.get("usd", float, None, required=True, minimum=0)
    period = s.get("period", str, "month", choices=PERIODS)
    s.done()
    return Budget(usd=usd, period=period) if usd is not None else None


def _limit(s: Section, key: str) -> int | None:
    return s.get(key, int, None, minimum=1)


def key_spec(s: Section, *, secret_required: bool = True, source: str = "config",
             created_at: int | None = None) -> KeySpec | None:
    """One key's fields from a YAML mapping or an admin request body (errors collect in ``s.errors``)."""
    before = len(s.errors)
    name = s.get("name", str, None, required=True)
    if name is not None and not NAME.match(name):
        s.error("must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)", "name")
    digest = None
    if s.has("key_sha256") and s.has("key"):
        s.error("give either key or key_sha256, not both", "key")
    if s.has("key_sha256"):
        value = s.get("key_sha256", str, None)
        if value is not None and not SHA256_HEX.match(value):
            s.error("must be the 64-character hex SHA-256 of the whole key", "key_sha256")
        elif value is not None:
            digest = value.lower()
    elif s.has("key"):
        value = s.get("key", (str, int), None)
        if value is not None and len(str(value)) < 8:
            s.error("must be at least 8 characters", "key")  # the value itself is never echoed
        elif value is not None:
            digest = sha256_hex(str(value))
    elif secret_required:
        s.error("is required (or key: ${ENV_VAR})", "key_sha256")
    team = s.get("team", str, None)
    models = tuple(s.string_list("models")) if s.data.get("models") is not None else s.raw("models")
    budget = _budget(s.section("budget")) if s.data.get("budget") is not None else s.raw("budget")
    spec = KeySpec(name=name or "", key_sha256=digest or "", team=team, models=models, rpm=_limit(s, "rpm"),
                   tpm=_limit(s, "tpm"), budget=budget, max_tokens=s.get("max_tokens", int, None, minimum=1),
                   source=source, created_at=created_at)
    s.done()
    return spec if len(s.errors) == before else None


def _keys(root: Section, teams: dict[str, TeamSpec], master_key: str) -> list[KeySpec]:
    raw = root.get("keys", list, [])
    out: list[KeySpec] = []
    names: set[str] = set()
    digests: set[str] = set()
    master_digest = sha256_hex(master_key) if master_key else None
    for index, item in enumerate(raw or []):
        s = Section(item, f"keys[{index}]", root.errors)
        spec = key_spec(s)
        if spec is None:
            continue
        if spec.name in names:
            s.error(f"duplicate key name '{spec.name}'", "name")
        if spec.key_sha256 in digests:
            s.error("the same key is configured twice", "key_sha256")
        if spec.key_sha256 == master_digest:
            s.error("a virtual key must not be the master key", "key_sha256")
        if teams and spec.team is not None and spec.team not in teams:
            s.error(f"unknown team '{spec.team}'{suggest(spec.team, teams)}", "team")
        names.add(spec.name)
        digests.add(spec.key_sha256)
        out.append(spec)
    return out


def _teams(s: Section) -> dict[str, TeamSpec]:
    out = {}
    for name in list(s.data):
        t = s.section(str(name))
        budget = _budget(t.section("budget")) if t.has("budget") else None
        out[str(name)] = TeamSpec(name=str(name), rpm=_limit(t, "rpm"), tpm=_limit(t, "tpm"), budget=budget)
        t.done()
    return out


def _policies(root: Section, teams: dict[str, TeamSpec]) -> list[PolicySpec]:
    """Policies in order; ``keys:`` selectors may name keys created later through the admin API."""
    raw = root.get("policies", list, [])
    out: list[PolicySpec] = []
    seen: set[str] = set()
    for index, item in enumerate(raw or []):
        s = Section(item, f"policies[{index}]", root.errors)
        name = s.get("name", str, None, required=True)
        if name in seen:
            s.error(f"duplicate policy name '{name}'", "name")
        seen.add(name or "")
        deny, redact = s.get("deny_pattern", str, None), s.get("redact_pattern", str, None)
        replacement = s.get("replacement", str, "[redacted]")
        if (deny is None) == (redact is None):
            s.error("give exactly one of deny_pattern or redact_pattern")
        if deny is not None and s.has("replacement"):
            s.error("only applies to redact_pattern", "replacement")
        pattern = _compile(s, "deny_pattern" if deny is not None else "redact_pattern", deny or redact)
        keys = frozenset(s.string_list("keys")) if s.has("keys") else None
        policy_teams = frozenset(s.string_list("teams")) if s.has("teams") else None
        for team in sorted(policy_teams or ()):
            if teams and team not in teams:
                s.error(f"unknown team '{team}'{suggest(team, teams)}", "teams")
        s.done()
        if name and pattern is not None:
            out.append(PolicySpec(name=name, pattern=pattern, action="deny" if deny is not None else "redact",
                                  replacement=replacement, keys=keys, teams=policy_teams))
    return out


def _compile(s: Section, key: str, value: str | None) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as exc:
        s.error(f"is not a valid regular expression ({exc})", key)
        return None


def _audit(s: Section, state_backend: str) -> AuditConfig:
    sinks = []
    for index, item in enumerate(s.get("sinks", list, []) or []):
        t = Section(item, f"{s.path}.sinks[{index}]", s.errors)
        kind = t.get("type", str, None, required=True, choices=SINK_TYPES)
        d = SinkSpec(type=kind or "file")
        if kind == "file":
            spec = SinkSpec(type="file", path=t.get("path", str, d.path),
                            rotate_mb=t.get("rotate_mb", float, d.rotate_mb, minimum=0.001),
                            keep=t.get("keep", int, d.keep, minimum=0), buffer=t.get("buffer", int, d.buffer, minimum=1))
        elif kind == "redis_stream":
            if state_backend != "redis":
                t.error("needs state.backend: redis", "type")
            spec = SinkSpec(type="redis_stream", stream=t.get("stream", str, d.stream),
                            maxlen=t.get("maxlen", int, d.maxlen, minimum=1),
                            buffer=t.get("buffer", int, d.buffer, minimum=1))
        else:
            continue
        t.done()
        sinks.append(spec)
    config = AuditConfig(sinks=tuple(sinks), include_bodies=s.get("include_bodies", bool, False))
    s.done()
    return config
