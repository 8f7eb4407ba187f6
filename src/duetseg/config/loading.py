"""Presets, YAML files with ``extends:``, dotted overrides, and validation into a Config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from duetseg.config.run import Config
from duetseg.errors import ConfigError

__all__ = ["PRESET_DIR", "list_presets", "apply_overrides", "load_config"]

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(source: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a preset or file; an ``extends: <preset or file>`` key inherits from another."""
    path = Path(source)
    if not path.exists():
        candidate = PRESET_DIR / f"{source}.yaml"
        if candidate.exists():
            path = candidate
        else:
            raise ConfigError(
                f"config {source!r} is neither a file nor a preset (presets: {list_presets()})"
            )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
    if parent is not None:
        if str(parent) in _seen:
            raise ConfigError(f"{path}: circular `extends: {parent}`")
        data = _deep_merge(_read_yaml(parent, (*_seen, str(parent))), data)
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset name or YAML file, apply overrides and validate.

    Args:
        source: preset name (see ``list_presets``) or path to a YAML file; None = defaults.
        overrides: dotted ``key=value`` strings.

    Returns:
        The validated config.

    Raises:
        ConfigError: unknown file, bad YAML, unknown keys or invalid values.
    """
    data = _read_yaml(source) if source is not None else {}
    data = apply_overrides(data, overrides or [])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {source or '(defaults)'}:\n{exc}") from exc
