"""The gateway's configuration: typed, frozen, validated at load time.

``load_config(path)`` reads YAML, substitutes ``${VAR}`` / ``${VAR:-default}`` from the environment,
checks every key and type (unknown keys are errors with a did-you-mean), and returns a ``Config``.
Every problem is reported at once as a ``ConfigError`` with ``path: message`` lines. The README's
configuration reference documents each key read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config_reader import ConfigError, Section, check_type, substitute_env, suggest, type_name
from gateway.governance.config import GovernanceConfig, parse_governance
from gateway.http1_proxy import parse_proxy_url
from providers.base import ProviderConfig, Timeout
from providers.registry import ProviderNotInstalled, Registry

DEFAULT_CONFIG_PATH = "config/gateway.yaml"
STRATEGIES = ("weighted", "round_robin", "least_busy", "latency", "cost")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    master_key: str = ""
    max_body_bytes: int = 10 * 1024 * 1024
    metrics_auth: bool = False
    workers: int = 1
    shutdown_grace_seconds: float = 30.0
    log_level: str = "info"
    log_requests: bool = True


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per million tokens
    output: float
    cached_input: float | None = None


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5
    failure_rate: float = 0.5
    min_requests: int = 20
    window_seconds: float = 60.0
    cooldown_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    model_group: str
    provider: str  # YAML provider name
    model: str  # upstream model id
    weight: float = 1.0
    max_concurrent: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    price: Price | None = None
    circuit_breaker: BreakerSettings = BreakerSettings()


@dataclass(frozen=True, slots=True)
class ModelGroup:
    name: str
    deployments: tuple[Deployment, ...]
    strategy: str = "weighted"
    retries: int = 2
    timeout: float = 600.0  # seconds to the first byte, all attempts together
    max_retry_wait: float = 10.0
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    owned_by: str = "switchyard"


@dataclass(frozen=True, slots=True)
class StateConfig:
    backend: str = "memory"
    url: str = "redis://localhost:6379/0"
    key_prefix: str = "switchyard:"
    timeout_ms: int = 50


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelGroup]
    prices: Mapping[str, Price] = field(default_factory=dict)
    state: StateConfig = StateConfig()
    circuit_breaker: BreakerSettings = BreakerSettings()
    path: str | None = None
    # sections owned by later features (governance); kept raw here and typed by their own modules
    extra: Mapping[str, Any] = field(default_factory=dict)
    # keys, teams, policies, audit (typed by gateway.governance.config)
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)

    def price_for(self, deployment: Deployment) -> Price | None:
        return deployment.price or self.prices.get(deployment.model)

    @property
    def deployments(self) -> dict[str, Deployment]:
        return {d.id: d for group in self.models.values() for d in group.deployments}


def resolve_config_path(path: str | None) -> str:
    return path or os.environ.get("SWITCHYARD_CONFIG") or DEFAULT_CONFIG_PATH


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                registry: Registry | None = None) -> Config:
    path = resolve_config_path(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc.strerror})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None
    return parse_config(raw, path=path, env=env, registry=registry)


def parse_config(raw: Any, *, path: str | None = None, env: Mapping[str, str] | None = None,
                 registry: Registry | None = None) -> Config:
    errors: list[str] = []
    raw = substitute_env(raw if raw is not None else {}, "", errors, dict(env) if env is not None else None)
    root = Section(raw, "", errors)
    registry = registry or Registry()
    server = _server(root.section("server"))
    providers = _providers(root.section("providers"), registry)
    breaker = _breaker(root.section("circuit_breaker"), BreakerSettings())
    prices = _prices(root, path)
    models = _models(root.section("models"), providers, breaker)
    state = _state(root.section("state"))
    governance = parse_governance(root, state.backend, server.master_key)
    extra = {key: root.raw(key) for key in EXTRA_SECTIONS if root.has(key)}
    root.done()
    if errors:
        raise ConfigError(errors)
    return Config(server=server, providers=providers, models=models, prices=prices, state=state,
                  circuit_breaker=breaker, path=path, extra=extra, governance=governance)


# sections validated by the modules that own them (see gateway/governance)
EXTRA_SECTIONS: tuple[str, ...] = ()


def _server(s: Section) -> ServerConfig:
    d = ServerConfig()
    cfg = ServerConfig(
        host=s.get("host", str, d.host),
        port=s.get("port", int, d.port, minimum=0, maximum=65535),
        master_key=s.get("master_key", (str, int), d.master_key),
        max_body_bytes=s.get("max_body_bytes", int, d.max_body_bytes, minimum=1),
        metrics_auth=s.get("metrics_auth", bool, d.metrics_auth),
        workers=s.get("workers", int, d.workers, minimum=1),
        shutdown_grace_seconds=s.get("shutdown_grace_seconds", float, d.shutdown_grace_seconds, minimum=0),
        log_level=s.get("log_level", str, d.log_level, choices=("debug", "info", "warning", "error")),
        log_requests=s.get("log_requests", bool, d.log_requests),
    )
    s.done()
    return ServerConfig(**{**_asdict(cfg), "master_key": str(cfg.master_key)})


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _timeout(s: Section) -> Timeout:
    d = Timeout()
    t = Timeout(connect=s.get("connect", float, d.connect, minimum=0.001),
                read=s.get("read", float, d.read, minimum=0.001),
                total=s.get("total", float, d.total, minimum=0.001))
    s.done()
    return t


def _providers(s: Section, registry: Registry) -> dict[str, ProviderConfig]:
    out: dict[str, ProviderConfig] = {}
    for name in list(s.data):
        p = s.section(str(name))
        kind = p.get("type", str, required=True)
        cls = None
        if kind is not None:
            if kind not in registry.names():
                p.error(f"unknown provider type '{kind}'{suggest(kind, registry.names())}; "
                        f"known: {', '.join(registry.names())}", "type")
            else:
                try:
                    cls = registry.get(kind)
                except ProviderNotInstalled as exc:
                    p.error(str(exc), "type")
        api_base = p.get("api_base", str, cls.default_api_base if cls else "")
        if cls is not None and not api_base:
            p.error(f"is required for provider type '{kind}'", "api_base")
        elif api_base and not api_base.startswith(("http://", "https://")) and not (cls and api_base == cls.default_api_base):
            p.error(f"must be an http:// or https:// URL, got {api_base!r}", "api_base")
        api_key = p.get("api_key", (str, int), None)
        timeout = _timeout(p.section("timeout")) if p.has("timeout") else Timeout()
        headers = p.string_map("headers")
        drop = p.get("drop_unsupported_params", bool, False)
        max_connections = p.get("max_connections", int, 1000, minimum=1)
        proxy = _proxy(p)
        options: dict[str, Any] = {}
        if cls is not None:
            for opt_name, spec in cls.options.items():
                if p.has(opt_name) and p.data[opt_name] is not None:
                    options[opt_name] = _option(p, opt_name, spec)
                else:
                    p.raw(opt_name)
                    options[opt_name] = spec.default
            p.done()
        out[str(name)] = ProviderConfig(
            name=str(name), type=kind or "", api_base=api_base or "",
            api_key=str(api_key) if api_key not in (None, "") else None, timeout=timeout, headers=headers,
            drop_unsupported_params=drop, options=options, max_connections=max_connections, proxy=proxy)
    return out


def _proxy(p: Section) -> str | None:
    """``proxy``: absent follows the environment; ``none`` or ``""`` means never; else an http:// proxy URL."""
    value = p.get("proxy", str, None)
    if value is None:
        return None
    if value.strip().lower() in ("", "none"):
        return ""
    try:
        parse_proxy_url(value)
    except ValueError as exc:
        p.error(str(exc), "proxy")
        return None
    return value.strip()


def _option(p: Section, name: str, spec) -> Any:
    value = p.raw(name)
    try:
        value = check_type(value, spec.type)
    except TypeError:
        p.error(f"must be {type_name(spec.type)}, got {value!r}", name)
        return spec.default
    if spec.choices is not None and value not in spec.choices:
        p.error(f"must be one of {', '.join(map(str, spec.choices))}, got {value!r}"
                f"{suggest(str(value), map(str, spec.choices))}", name)
        return spec.default
    if spec.item_type is not None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            try:
                check_type(item, spec.item_type)
            except TypeError:
                where = f"{name}.{key}" if isinstance(value, dict) else f"{name}[{key}]"
                p.error(f"must be {type_name(spec.item_type)}, got {item!r}", where)
    return value


def _breaker(s: Section, d: BreakerSettings) -> BreakerSettings:
    b = BreakerSettings(
        failure_threshold=s.get("failure_threshold", int, d.failure_threshold, minimum=1),
        failure_rate=s.get("failure_rate", float, d.failure_rate, minimum=0.0, maximum=1.0),
        min_requests=s.get("min_requests", int, d.min_requests, minimum=1),
        window_seconds=s.get("window_seconds", float, d.window_seconds, minimum=1),
        cooldown_seconds=s.get("cooldown_seconds", float, d.cooldown_seconds, minimum=0.1),
    )
    s.done()
    return b


def _price(s: Section) -> Price:
    p = Price(input=s.get("input", float, 0.0, required=True, minimum=0),
              output=s.get("output", float, 0.0, required=True, minimum=0),
              cached_input=s.get("cached_input", float, None, minimum=0))
    s.done()
    return p


# the price table shipped with Switchyard: used when the config has no ``prices:`` (``prices: {}`` for none)
SHIPPED_PRICES = Path(__file__).resolve().parent.parent / "config" / "prices.yaml"


def _prices(root: Section, config_path: str | None) -> dict[str, Price]:
    value = root.raw("prices")
    if value is None:
        if not SHIPPED_PRICES.exists():
            return {}
        value = str(SHIPPED_PRICES)
    errors = root.errors
    if isinstance(value, str):
        file = _find_relative(value, config_path)
        try:
            data = yaml.safe_load(Path(file).read_text())
        except OSError as exc:
            errors.append(f"prices: cannot read price table '{value}' ({exc.strerror})")
            return {}
        except yaml.YAMLError as exc:
            errors.append(f"prices: invalid YAML in '{value}': {exc}")
            return {}
        section = Section(data, f"prices({value})", errors)
        table = section.section("models") if section.has("models") else section
        if section.has("models"):
            section.get("updated", (str,), None)
            section.get("currency", str, "USD", choices=("USD",))
            section.get("source", str, None)
            section.done()
    elif isinstance(value, dict):
        table = Section(value, "prices", errors)
    else:
        errors.append(f"prices: must be a file path or a mapping, got {value!r}")
        return {}
    return {str(model): _price(table.section(str(model))) for model in list(table.data)}


def _find_relative(value: str, config_path: str | None) -> str:
    """A relative path is looked up from the working directory, then beside the config file."""
    if os.path.isabs(value) or os.path.exists(value) or not config_path:
        return value
    beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), value)
    return beside if os.path.exists(beside) else value


def _models(s: Section, providers: Mapping[str, ProviderConfig], breaker: BreakerSettings) -> dict[str, ModelGroup]:
    groups: dict[str, ModelGroup] = {}
    seen_ids: dict[str, str] = {}
    for name in list(s.data):
        name = str(name)
        g = s.section(name)
        deployments = []
        raw_deployments = g.get("deployments", list, [], required=True)
        if g.has("deployments") and not raw_deployments:
            g.error("must list at least one deployment", "deployments")
        for index, raw in enumerate(raw_deployments or []):
            d = Section(raw, f"{g.path}.deployments[{index}]", s.errors)
            provider = d.get("provider", str, required=True)
            if provider is not None and provider not in providers:
                d.error(f"unknown provider '{provider}'{suggest(provider, providers)}", "provider")
            model = d.get("model", str, required=True)
            dep_id = d.get("id", str, f"{name}.{index}")
            if dep_id in seen_ids:
                d.error(f"duplicate deployment id '{dep_id}' (also used in models.{seen_ids[dep_id]})", "id")
            seen_ids[dep_id] = name
            price = _price(d.section("price")) if d.has("price") else None
            deployments.append(Deployment(
                id=dep_id, model_group=name, provider=provider or "", model=model or "",
                weight=d.get("weight", float, 1.0, minimum=0),
                max_concurrent=d.get("max_concurrent", int, None, minimum=1),
                rpm=d.get("rpm", int, None, minimum=1), tpm=d.get("tpm", int, None, minimum=1),
                price=price,
                circuit_breaker=_breaker(d.section("circuit_breaker"), breaker) if d.has("circuit_breaker") else breaker,
            ))
            d.done()
        groups[name] = ModelGroup(
            name=name, deployments=tuple(deployments),
            strategy=g.get("strategy", str, "weighted", choices=STRATEGIES),
            retries=g.get("retries", int, 2, minimum=0, maximum=20),
            timeout=g.get("timeout", float, 600.0, minimum=0.001),
            max_retry_wait=g.get("max_retry_wait", float, 10.0, minimum=0),
            fallbacks=tuple(g.string_list("fallbacks")),
            context_window_fallbacks=tuple(g.string_list("context_window_fallbacks")),
            owned_by=g.get("owned_by", str, "switchyard"),
        )
        g.done()
    for group in groups.values():
        for key in ("fallbacks", "context_window_fallbacks"):
            for i, target in enumerate(getattr(group, key)):
                if target not in groups:
                    s.errors.append(f"models.{group.name}.{key}[{i}]: unknown model '{target}'{suggest(target, groups)}")
                elif target == group.name:
                    s.errors.append(f"models.{group.name}.{key}[{i}]: a model cannot fall back to itself")
    return groups


def _state(s: Section) -> StateConfig:
    d = StateConfig()
    st = StateConfig(
        backend=s.get("backend", str, d.backend, choices=("memory", "redis")),
        url=s.get("url", str, d.url),
        key_prefix=s.get("key_prefix", str, d.key_prefix),
        timeout_ms=s.get("timeout_ms", int, d.timeout_ms, minimum=1),
    )
    s.done()
    return st
