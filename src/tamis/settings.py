"""One source of truth for settings: config classes declare each default once, with its help and range.

``setting(default, help)`` is a dataclass field carrying its help text, range and choices. The CLI
builds its options from these fields (``opt`` in ``tamis.cli.app``), recipes validate their keys against
them, and ``--config FILE.yaml`` fills them from a file: the same names everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import yaml

from tamis.errors import ConfigError, unknown

T = TypeVar("T")


def setting(default: Any, help: str, *, range: tuple[float | None, float | None] | None = None,
            choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with its default, help, range and choices (read by the CLI and the docs)."""
    metadata = {"help": help, "range": range, "choices": tuple(choices) if choices else None}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def setting_info(cls: type, name: str) -> tuple[Any, str, dict[str, Any]]:
    """(default, help, metadata) of one field of a config class."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyError(f"{cls.__name__} has no setting {name!r}")
    f = fields[name]
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)  # type: ignore[misc]
    return default, f.metadata.get("help", ""), dict(f.metadata)


def check_range(cls_name: str, name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    lo, hi = metadata.get("range") or (None, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{name} must lie in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}], "
                              f"got {value}")
    choices = metadata.get("choices")
    if choices and value is not None and value not in choices:
        raise ConfigError(unknown(name.replace("_", " "), str(value), choices))


def validate(config: Any) -> Any:
    """Check every field of a config dataclass against its declared range and choices."""
    for f in dataclasses.fields(config):
        check_range(type(config).__name__, f.name, getattr(config, f.name), f.metadata)
    return config


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """A config from a mapping (a recipe step's parameters, a YAML file); unknown keys are an error."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in values:
        if key not in names:
            raise ConfigError(f"{where + ': ' if where else ''}{unknown('setting', key, names)}")
    try:
        return validate(cls(**values))
    except TypeError as exc:
        raise ConfigError(f"{where + ': ' if where else ''}{exc}") from None


def load_config_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) settings file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a settings file must hold a mapping of option names to values")
    return data


# ``--columns SOURCE=FIELD,...`` of the CLI: a column mapping every dataset read in this command applies
# (``tamis.io.read_dataset``), recorded in every run's settings so another mapping is another run.
COLUMN_MAP: ContextVar[dict[str, str] | None] = ContextVar("tamis_column_map", default=None)


def parse_column_map(text: str) -> dict[str, str]:
    """``"sentence=text,answer=output"`` -> {"sentence": "text", "answer": "output"}; malformed pairs are errors."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        source, sep, field = pair.partition("=")
        if not sep or not source.strip() or not field.strip():
            raise ConfigError(f"--columns: {pair!r} is not SOURCE=FIELD (e.g. sentence=text,answer=output)")
        if source.strip() in mapping:
            raise ConfigError(f"--columns: column {source.strip()!r} is mapped twice")
        mapping[source.strip()] = field.strip()
    return mapping
