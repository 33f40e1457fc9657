"""custom: any OpenAI-compatible server, configured in YAML only."""

from __future__ import annotations

import orjson
import pytest

from gateway.config import parse_config
from gateway.config_reader import ConfigError
from tests.providers.dialect_helpers import call, provider

pytestmark = pytest.mark.timeout(10)


def test_auth_header_and_scheme():
    assert provider("custom").auth_headers()["authorization"] == "Bearer test-key"
    raw = provider("custom", auth_header="api-key", auth_scheme="").auth_headers()
    assert raw["api-key"] == "test-key" and "authorization" not in raw
    assert provider("custom", auth_scheme="Token").auth_headers()["authorization"] == "Token test-key"
    assert "authorization" not in provider("custom", api_key=None).auth_headers()
    assert provider("custom", headers={"X-Team": "a"}).auth_headers()["X-Team"] == "a"


def test_rename_and_drop_on_chat_and_embeddings():
    p = provider("custom", rename_params={"max_completion_tokens": "max_tokens"},
                 drop_params=["user", "stream_options"])
    chat = orjson.loads(p.build_chat(call({"messages": [], "max_completion_tokens": 5, "user": "u"},
                                          stream=True, include_usage=True)).body)
    assert chat == {"messages": [], "max_tokens": 5, "model": "m"}  # stream_options added by the gateway, dropped
    emb = orjson.loads(p.build_embeddings(call({"input": "a", "user": "u"}, endpoint="embeddings")).body)
    assert emb == {"input": "a", "model": "m"}


def test_yaml_only_config():
    raw = {"providers": {"local": {"type": "custom", "api_base": "http://127.0.0.1:8000/v1", "auth_header": "X-Key",
                                   "auth_scheme": "", "rename_params": {"a": "b"}, "drop_params": ["user"]}},
           "models": {"m": {"deployments": [{"provider": "local", "model": "m"}]}}}
    config = parse_config(raw, env={})
    assert config.providers["local"].options["rename_params"] == {"a": "b"}
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": {"local": {"type": "custom"}}, "models": {}}, env={})
    assert "api_base" in str(info.value)
    with pytest.raises(ConfigError):
        parse_config({"providers": {"local": {"type": "custom", "api_base": "http://x", "drop_params": "user"}},
                      "models": {}}, env={})
