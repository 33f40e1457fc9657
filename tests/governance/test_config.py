"""The keys, teams, policies and audit sections: typed, strict, secrets hashed on load."""

from __future__ import annotations

import hashlib

import pytest

from gateway.config import parse_config
from gateway.config_reader import ConfigError

BASE = {
    "providers": {"p": {"type": "openai", "api_key": "k"}},
    "models": {"gpt-4o-mini": {"deployments": [{"provider": "p", "model": "gpt-4o-mini", "rpm": 10, "tpm": 1000}]}},
}
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def errors_of(extra, env=None):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, **extra}, env=env or {})
    return err.value.errors


def test_the_issue_example_parses():
    config = parse_config({**BASE,
        "keys": [{"name": "checkout-service", "key_sha256": SHA, "team": "payments", "models": ["gpt-4o*", "claude-*"],
                  "rpm": 600, "tpm": 200000, "budget": {"usd": 50, "period": "day"}, "max_tokens": 4096},
                 {"name": "env-key", "key": "${CHECKOUT_KEY}"}],
        "teams": {"payments": {"budget": {"usd": 500, "period": "month"}, "rpm": 5000}},
        "policies": [{"name": "no-card-numbers", "deny_pattern": r"\b(?:\d[ -]*?){13,16}\b"},
                     {"name": "redact-emails", "redact_pattern": r"[\w.+-]+@[\w-]+\.[\w.]+", "replacement": "[email]",
                      "teams": ["payments"]}],
        "audit": {"sinks": [{"type": "file", "path": "./audit/audit.jsonl", "rotate_mb": 100, "keep": 10}],
                  "include_bodies": False},
    }, env={"CHECKOUT_KEY": "sk-live-from-env-123"})
    gov = config.governance
    key = gov.keys[0]
    assert (key.name, key.team, key.models, key.rpm, key.tpm, key.max_tokens) == \
           ("checkout-service", "payments", ("gpt-4o*", "claude-*"), 600, 200000, 4096)
    assert key.budget.usd == 50 and key.budget.period == "day" and key.budget.nanos == 50 * 10**9
    assert gov.keys[1].key_sha256 == hashlib.sha256(b"sk-live-from-env-123").hexdigest()
    assert "sk-live-from-env-123" not in repr(config)  # the plaintext is not kept anywhere
    assert gov.teams["payments"].rpm == 5000 and gov.teams["payments"].budget.period == "month"
    assert [p.action for p in gov.policies] == ["deny", "redact"]
    assert gov.policies[1].teams == frozenset({"payments"}) and gov.policies[0].teams is None
    assert gov.audit.sinks[0].keep == 10 and gov.audit.include_bodies is False
    deployment = config.models["gpt-4o-mini"].deployments[0]
    assert (deployment.rpm, deployment.tpm) == (10, 1000)


def test_prices_default_to_the_shipped_table():
    config = parse_config(BASE, env={})
    assert config.prices["gpt-4o-mini"].input > 0
    assert parse_config({**BASE, "prices": {}}, env={}).prices == {}


def test_key_errors_name_exact_paths_and_never_echo_the_secret():
    errors = errors_of({"keys": [
        {"name": "a", "key_sha256": "nothex", "rpm": 0},
        {"name": "b", "key": "short", "budget": {"usd": 1, "period": "week"}, "modles": []},
        {"name": "c", "key": "sk-long-enough-1", "key_sha256": SHA},
        {"name": "a", "key_sha256": SHA.upper()},
        {"key_sha256": SHA},
    ]})
    assert "keys[0].key_sha256: must be the 64-character hex SHA-256 of the whole key" in errors
    assert "keys[0].rpm: must be at least 1, got 0" in errors
    assert "keys[1].key: must be at least 8 characters" in errors
    assert any(e.startswith("keys[1].budget.period: must be one of day, month") for e in errors)
    assert "keys[1].modles: unknown key (did you mean 'models'?)" in errors
    assert "keys[2].key: give either key or key_sha256, not both" in errors
    assert "keys[3].name: duplicate key name 'a'" not in errors  # keys[0] was invalid, so 'a' is free
    assert "keys[4].name: is required" in errors
    assert not any("short" in e for e in errors)


def test_duplicates_master_key_and_unknown_team():
    errors = errors_of({"server": {"master_key": "sk-master-key-0001"},
                        "keys": [{"name": "a", "key_sha256": SHA, "team": "paymnts"},
                                 {"name": "a", "key_sha256": SHA},
                                 {"name": "m", "key": "sk-master-key-0001"}],
                        "teams": {"payments": {"rpm": 5}}})
    assert "keys[0].team: unknown team 'paymnts' (did you mean 'payments'?)" in errors
    assert "keys[1].name: duplicate key name 'a'" in errors
    assert "keys[1].key_sha256: the same key is configured twice" in errors
    assert "keys[2].key_sha256: a virtual key must not be the master key" in errors


def test_policy_and_audit_errors():
    errors = errors_of({
        "policies": [{"name": "x", "deny_pattern": "(", "teams": ["t"]},
                     {"name": "y", "deny_pattern": "a", "redact_pattern": "b"},
                     {"name": "z", "deny_pattern": "a", "replacement": "r"}],
        "audit": {"sinks": [{"type": "redis_stream"}, {"type": "kafka"}, {"type": "file", "rotate": 5}],
                  "include_body": True},
    })
    assert any(e.startswith("policies[0].deny_pattern: is not a valid regular expression") for e in errors)
    assert "policies[1]: give exactly one of deny_pattern or redact_pattern" in errors
    assert "policies[2].replacement: only applies to redact_pattern" in errors
    assert "audit.sinks[0].type: needs state.backend: redis" in errors
    assert any(e.startswith("audit.sinks[1].type: must be one of file, redis_stream") for e in errors)
    assert any(e.startswith("audit.sinks[2].rotate: unknown key") for e in errors)
    assert "audit.include_body: unknown key (did you mean 'include_bodies'?)" in errors
