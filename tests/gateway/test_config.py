"""Config loading: env substitution, strict validation with exact paths, the CLI's check-config."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.config_reader import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "providers": {"openai-main": {"type": "openai", "api_key": "k"}},
    "models": {"gpt-4o-mini": {"deployments": [{"provider": "openai-main", "model": "gpt-4o-mini-2024-07-18"}]}},
}


def errors_of(raw, env=None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(raw, env=env or {})
    return err.value.errors


def test_minimal_config_and_defaults():
    config = parse_config(BASE, env={})
    provider = config.providers["openai-main"]
    assert provider.api_base == "https://api.openai.com/v1"  # every type has a default
    assert provider.timeout.read == 600
    deployment = config.models["gpt-4o-mini"].deployments[0]
    assert deployment.id == "gpt-4o-mini.0"
    assert config.server.port == 8080 and config.server.max_body_bytes == 10485760
    assert config.models["gpt-4o-mini"].retries == 2 and config.models["gpt-4o-mini"].timeout == 600


def test_unknown_provider_reference_has_suggestion():
    raw = {**BASE, "models": {"gpt-4o-mini": {"deployments": [{"provider": "opnai", "model": "x"}]}}}
    assert errors_of(raw) == ["models.gpt-4o-mini.deployments[0].provider: unknown provider 'opnai' (did you mean 'openai-main'?)"]


def test_unknown_keys_and_wrong_types_name_exact_paths():
    raw = {"server": {"prot": 8080, "max_body_bytes": "big"},
           "providers": {"p": {"type": "openai", "timeout": {"read": "slow"}, "api_kye": "x"}},
           "models": {"m": {"deployments": [{"provider": "p", "model": "x", "wieght": 2}], "retries": -1}},
           "extra_section": 1}
    errors = errors_of(raw)
    assert "server.prot: unknown key (did you mean 'port'?)" in errors
    assert "server.max_body_bytes: must be an integer, got 'big'" in errors
    assert "providers.p.timeout.read: must be a number, got 'slow'" in errors
    assert "providers.p.api_kye: unknown key (did you mean 'api_key'?)" in errors
    assert "models.m.deployments[0].wieght: unknown key (did you mean 'weight'?)" in errors
    assert "models.m.retries: must be at least 0, got -1" in errors
    assert any(e.startswith("extra_section: unknown key") for e in errors)


def test_unknown_plugin_type():
    errors = errors_of({"providers": {"p": {"type": "opanai"}}, "models": {}})
    assert errors[0].startswith("providers.p.type: unknown provider type 'opanai' (did you mean 'openai'?)")


def test_env_substitution():
    raw = {"server": {"master_key": "${MK}", "port": "${PORT:-9000}"}, **BASE}
    config = parse_config(raw, env={"MK": "secret"})
    assert config.server.master_key == "secret" and config.server.port == 9000
    errors = errors_of({**BASE, "providers": {"openai-main": {"type": "openai", "api_key": "${OPENAI_API_KEY}"}}})
    assert errors == ["providers.openai-main.api_key: environment variable 'OPENAI_API_KEY' is not set "
                      "(use ${OPENAI_API_KEY:-default} for a default)"]
    config = parse_config({"server": {"master_key": "${SWITCHYARD_MASTER_KEY:-}"}, **BASE}, env={})
    assert config.server.master_key == ""


def test_fallback_targets_and_duplicate_ids():
    raw = {**BASE, "models": {
        "a": {"fallbacks": ["b", "zz"], "deployments": [{"provider": "openai-main", "model": "x", "id": "same"}]},
        "b": {"deployments": [{"provider": "openai-main", "model": "y", "id": "same"}]}}}
    errors = errors_of(raw)
    assert "models.a.fallbacks[1]: unknown model 'zz'" in errors
    assert any("duplicate deployment id 'same'" in e for e in errors)


def test_provider_specific_options_are_validated():
    raw = {"providers": {"m": {"type": "mock", "latency_ms": "fast", "response": "hi"}}, "models": {}}
    assert errors_of(raw) == ["providers.m.latency_ms: must be a number, got 'fast'"]


def test_prices_file_and_deployment_override(tmp_path):
    (tmp_path / "prices.yaml").write_text("updated: '2026-11-01'\nmodels:\n  x: {input: 1, output: 2, cached_input: 0.5}\n")
    (tmp_path / "gw.yaml").write_text(textwrap.dedent("""
        providers: {p: {type: mock}}
        models:
          a: {deployments: [{provider: p, model: x}, {provider: p, model: y, price: {input: 3, output: 4}}]}
        prices: prices.yaml
    """))
    config = load_config(str(tmp_path / "gw.yaml"), env={})
    first, second = config.models["a"].deployments
    assert config.price_for(first).cached_input == 0.5 and config.price_for(second).input == 3


def test_shipped_price_table_loads():
    config = load_config(str(ROOT / "config" / "gateway.yaml"), env={})
    assert config.prices["gpt-4o-mini"].input > 0


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})}, timeout=60)


def test_check_config_shipped_default():
    result = cli("check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK: 1 providers, 3 models"


def test_check_config_reports_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {openai-main: {type: openai}}\nmodels: {m: {deployments: [{provider: opnai, model: x}]}}\n")
    result = cli("check-config", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == "models.m.deployments[0].provider: unknown provider 'opnai' (did you mean 'openai-main'?)"
    assert cli("check-config", "--config", str(bad)).returncode == 1
    assert cli("check-config", env={"SWITCHYARD_CONFIG": str(bad)}).returncode == 1


def test_serve_refuses_invalid_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}\n")
    result = cli("serve", "--config", str(bad))
    assert result.returncode == 1
    assert "server.port: must be an integer, got 'nope'" in result.stderr


def test_provider_proxy_key():
    def proxy_of(value):
        raw = {**BASE, "providers": {"openai-main": {"type": "openai", "api_key": "k", "proxy": value}}}
        return parse_config(raw, env={"P": "http://u:pw@proxy.corp:3128"}).providers["openai-main"].proxy

    assert parse_config(BASE, env={}).providers["openai-main"].proxy is None  # absent: the environment decides
    assert proxy_of("${P}") == "http://u:pw@proxy.corp:3128"
    assert proxy_of("none") == proxy_of("") == ""  # never, whatever the environment says
    errors = errors_of({"models": {}, "providers": {"a": {"type": "openai", "proxy": "socks5://u:hunter2@h:1080"},
                                              "b": {"type": "openai", "proxy": "https://h:443"},
                                              "c": {"type": "openai", "proxy": 3128}}})
    shape = "must be an http:// proxy URL (http://[user:pass@]host:port)"
    assert errors == [f"providers.a.proxy: {shape}, got 'socks5://***@h:1080'",
                      f"providers.b.proxy: {shape}, got 'https://h:443'",
                      "providers.c.proxy: must be a string, got 3128"]
