"""Reading raw YAML into typed config: environment substitution, and a checker that names exact paths.

``Section`` wraps one mapping of the YAML tree. Reading a key records it; ``done()`` reports every key
that was not read as unknown, with a did-you-mean suggestion. Errors are collected (not raised one by
one) so ``switchyard check-config`` shows all of them at once.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class ConfigError(Exception):
    """Raised with every problem found; ``errors`` holds ``"path: message"`` lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def suggest(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if not match:
        match = [c for c in choices if c.startswith(word) or word.startswith(c)][:1]
    return f" (did you mean '{match[0]}'?)" if match else ""


def substitute_env(node: Any, path: str, errors: list[str], env: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of the tree."""
    env = os.environ if env is None else env
    if isinstance(node, dict):
        return {k: substitute_env(v, join(path, str(k)), errors, env) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, f"{path}[{i}]", errors, env) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append(f"{path}: environment variable '{name}' is not set (use ${{{name}:-default}} for a default)")
        return ""

    whole = _VAR.fullmatch(node)
    value = _VAR.sub(replace, node)
    if whole and value != "":
        # a value that is one substitution keeps YAML's scalar typing: port: ${PORT:-8080} is an int
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return parsed if isinstance(parsed, (int, float, bool)) else value
    return value


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a mapping",
               list: "a list"}


def type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in expected)
    return _TYPE_NAMES.get(expected, expected.__name__)


def check_type(value: Any, expected: type | tuple[type, ...]) -> Any:
    """The value if it fits ``expected`` (ints accepted for floats, bools never for numbers), else raise."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in kinds:
        raise TypeError
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kinds):
        return value
    raise TypeError


class Section:
    def __init__(self, data: Any, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.error(f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    def error(self, message: str, key: str | None = None) -> None:
        self.errors.append(f"{join(self.path, key) if key else (self.path or '<root>')}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self._read.add(key)
        return self.data.get(key)

    def get(self, key: str, expected: type | tuple[type, ...], default: Any = None, *, required: bool = False,
            choices: Iterable[Any] | None = None, minimum: float | None = None, maximum: float | None = None) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.error("is required", key)
            return default
        value = self.data[key]
        try:
            value = check_type(value, expected)
        except TypeError:
            self.error(f"must be {type_name(expected)}, got {value!r}", key)
            return default
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                self.error(f"must be one of {', '.join(map(str, choices))}, got {value!r}{suggest(str(value), map(str, choices))}", key)
                return default
        if minimum is not None and value < minimum:
            self.error(f"must be at least {minimum}, got {value!r}", key)
            return default
        if maximum is not None and value > maximum:
            self.error(f"must be at most {maximum}, got {value!r}", key)
            return default
        return value

    def section(self, key: str) -> Section:
        self._read.add(key)
        return Section(self.data.get(key), join(self.path, key), self.errors)

    def string_list(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self.get(key, list, default if default is not None else [])
        out = []
        for i, item in enumerate(value or []):
            if isinstance(item, str):
                out.append(item)
            else:
                self.error(f"must be a string, got {item!r}", f"{key}[{i}]")
        return out

    def string_map(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        out = {}
        for k, v in (value or {}).items():
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                out[str(k)] = str(v)
            else:
                self.error(f"must be a string, got {v!r}", f"{key}.{k}")
        return out

    def done(self, allowed_extra: Iterable[str] = ()) -> None:
        known = self._read | set(allowed_extra)
        for key in self.data:
            if key not in known:
                self.error(f"unknown key{suggest(str(key), known)}", str(key))
