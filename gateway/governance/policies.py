"""Content policies: deny or redact request text before it is forwarded.

Policies run in the order configured, over every slot of request text (``text.text_slots``); a
redaction is seen by the policies after it. A deny raises ``PolicyViolation`` naming the policy (never
the matched text), so the request never reaches an upstream. Every policy that applies to the caller
leaves one decision, ``allowed``, ``denied`` or ``redacted``, in the exchange's ``policy`` list.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import PolicyViolation
from gateway.governance.config import PolicySpec
from gateway.governance.text import editable_copy, text_slots


class PolicySet:
    def __init__(self, policies: tuple[PolicySpec, ...]) -> None:
        self.policies = policies

    def __bool__(self) -> bool:
        return bool(self.policies)

    def apply(self, body: dict[str, Any], endpoint: str, key_name: str | None, team: str | None,
              decisions: list[dict[str, Any]]) -> dict[str, Any]:
        """The body to forward (a redacted copy when anything was redacted); raises on a deny."""
        applicable = [p for p in self.policies if p.applies_to(key_name, team)]
        if not applicable:
            return body
        copied = False
        slots = list(text_slots(body, endpoint))
        for policy in applicable:
            if policy.action == "deny":
                if any(policy.pattern.search(container[key]) for container, key in slots):
                    decisions.append({"name": policy.name, "decision": "denied"})
                    raise PolicyViolation(f"the request was blocked by policy '{policy.name}'", code="policy_violation")
                decisions.append({"name": policy.name, "decision": "allowed"})
                continue
            hits = [(c, k) for c, k in slots if policy.pattern.search(c[k])]
            if not hits:
                decisions.append({"name": policy.name, "decision": "allowed"})
                continue
            if not copied:
                body = editable_copy(body, endpoint)
                slots = list(text_slots(body, endpoint))
                hits = [(c, k) for c, k in slots if policy.pattern.search(c[k])]
                copied = True
            for container, key in hits:
                container[key] = policy.pattern.sub(policy.replacement, container[key])
            decisions.append({"name": policy.name, "decision": "redacted"})
        return body

    def redact(self, text: str, key_name: str | None, team: str | None) -> str:
        """Apply the caller's redact policies to a text (the audit's copy of a response)."""
        for policy in self.policies:
            if policy.action == "redact" and policy.applies_to(key_name, team):
                text = policy.pattern.sub(policy.replacement, text)
        return text
