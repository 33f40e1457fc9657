"""Policies: deny and redact over every text slot, selectors, decisions, and the client's body untouched."""

from __future__ import annotations

import copy
import re

import pytest

from gateway.errors import PolicyViolation
from gateway.governance.config import PolicySpec
from gateway.governance.policies import PolicySet

CARD = PolicySpec("no-card-numbers", re.compile(r"\b(?:\d[ -]*?){13,16}\b"), "deny")
EMAIL = PolicySpec("redact-emails", re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), "redact", "[email]")


def chat(*messages):
    return {"model": "m", "messages": list(messages)}


@pytest.mark.parametrize("message", [
    {"role": "system", "content": "card 4111 1111 1111 1111"},
    {"role": "tool", "tool_call_id": "c", "content": "4111111111111111"},
    {"role": "user", "content": [{"type": "text", "text": "pay 4111-1111-1111-1111"}]},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c", "type": "function", "function": {"name": "pay", "arguments": '{"n": "4111111111111111"}'}}]},
])
def test_deny_looks_at_every_message_and_never_echoes_the_match(message):
    decisions = []
    with pytest.raises(PolicyViolation) as err:
        PolicySet((CARD,)).apply(chat({"role": "user", "content": "hi"}, message), "chat", "k", None, decisions)
    assert err.value.status == 400 and err.value.code == "policy_violation"
    assert "no-card-numbers" in err.value.message and "4111" not in err.value.message
    assert decisions == [{"name": "no-card-numbers", "decision": "denied"}]


def test_redaction_returns_a_copy_and_leaves_the_client_body_alone():
    body = chat({"role": "system", "content": "ops@example.com"},
                {"role": "user", "content": [{"type": "text", "text": "mail a.b+c@mail.example.org"},
                                             {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]})
    original = copy.deepcopy(body)
    decisions = []
    out = PolicySet((CARD, EMAIL)).apply(body, "chat", "k", None, decisions)
    assert body == original
    assert out["messages"][0]["content"] == "[email]"
    assert out["messages"][1]["content"][0]["text"] == "mail [email]"
    assert out["messages"][1]["content"][1] == original["messages"][1]["content"][1]
    assert decisions == [{"name": "no-card-numbers", "decision": "allowed"},
                         {"name": "redact-emails", "decision": "redacted"}]


def test_embeddings_input_is_checked_and_redacted():
    decisions = []
    out = PolicySet((EMAIL,)).apply({"model": "e", "input": ["x@y.com", "plain"]}, "embeddings", None, None, decisions)
    assert out["input"] == ["[email]", "plain"]
    with pytest.raises(PolicyViolation):
        PolicySet((CARD,)).apply({"model": "e", "input": "4111 1111 1111 1111"}, "embeddings", None, None, [])


def test_selectors_pick_keys_and_teams():
    scoped = PolicySpec("p", re.compile("secret"), "deny", keys=frozenset({"a"}), teams=frozenset({"payments"}))
    policies = PolicySet((scoped,))
    body = chat({"role": "user", "content": "secret"})
    for key, team in (("a", None), ("b", "payments")):
        with pytest.raises(PolicyViolation):
            policies.apply(body, "chat", key, team, [])
    decisions = []
    assert policies.apply(body, "chat", "b", "search", decisions) is body
    assert decisions == []  # a policy that does not apply leaves no decision


def test_no_match_returns_the_same_object():
    body = chat({"role": "user", "content": "hello"})
    assert PolicySet((CARD, EMAIL)).apply(body, "chat", None, None, []) is body
