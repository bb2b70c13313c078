"""Optional parts of tamis and the clear error when one is missing.

The core (read, inspect, convert, signals that need no model, policies and decisions) installs with
no compiler and no torch; the rest comes as pip extras. Code that needs an extra calls
``require("studio")`` (or wraps its imports in ``with needs("train"):``) before importing, so a
missing one fails with the command to run instead of a bare ModuleNotFoundError::

    tamis studio serve  ->  error: the post-editing studio needs the 'studio' extra (missing: fastapi);
                            install it with: pip install 'tamis[studio]'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from tamis.errors import ConfigError

# extra -> the importable modules it provides that tamis needs (checked in this order)
EXTRAS: dict[str, tuple[str, ...]] = {
    "models": ("torch", "transformers", "safetensors", "sentence_transformers"),
    "llamacpp": ("llama_cpp",),
    "train": ("torch", "transformers", "peft", "trl", "accelerate"),
    "influence": ("torch", "transformers", "peft", "safetensors"),
    "studio": ("fastapi", "uvicorn", "sqlalchemy", "argon2", "multipart", "markdown_it", "jinja2"),
    "ray": ("ray",),
}
# a module that turns up missing -> the extra that brings it (the first extra listing it)
_EXTRA_OF: dict[str, str] = {}
for _extra, _mods in EXTRAS.items():
    for _mod in _mods:
        _EXTRA_OF.setdefault(_mod, _extra)
_EXTRA_OF.update({"faiss": "models", "rouge_score": "models", "gguf": "models", "tokenizers": "models",
                  "psycopg": "studio", "starlette": "studio", "kronfluence": "influence"})


class MissingExtra(ConfigError, ImportError):
    """A part of tamis whose optional dependencies are not installed; names the extra to install.

    It is an ImportError too, so code that treats an unavailable import as "feature off" still works."""

    def __init__(self, extra: str, module: str, what: str | None = None) -> None:
        self.extra = extra
        self.module = module
        needs = f"{what} needs" if what else "this needs"
        super().__init__(f"{needs} the {extra!r} extra (missing: {module}); install it with: "
                         f"pip install 'tamis[{extra}]'")


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be imported, or None when the extra is installed."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    for module in EXTRAS[extra]:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def available(extra: str) -> bool:
    """Whether every module ``extra`` provides can be imported."""
    return missing(extra) is None


def require(extra: str, what: str | None = None) -> None:
    """Raise MissingExtra (a ConfigError naming ``pip install 'tamis[EXTRA]'``) unless ``extra`` is installed."""
    module = missing(extra)
    if module is not None:
        raise MissingExtra(extra, module, what)


def extra_for(module: str | None) -> str | None:
    """The extra that provides ``module`` (a dotted name is looked up by its top package)."""
    return _EXTRA_OF.get((module or "").split(".")[0])


# tamis modules -> the extra they need (the Python namespace names it when one is missing)
_MODULE_EXTRA = (("tamis.train", "train"), ("tamis.signals.influence", "influence"), ("tamis.studio", "studio"),
                 ("tamis.models.llamacpp", "llamacpp"), ("tamis.models", "models"), ("tamis.signals", "models"),
                 ("tamis.generate", "models"), ("tamis.pipeline", "models"))


def extra_of_module(module: str) -> str:
    """The extra a tamis module needs beyond the core (by package; "models" when unsure)."""
    return next((extra for prefix, extra in _MODULE_EXTRA if module == prefix or module.startswith(prefix + ".")),
                "models")


@contextmanager
def needs(extra: str, what: str | None = None) -> Iterator[None]:
    """Turn a ModuleNotFoundError inside the block into MissingExtra when an extra provides the module:
    ``extra`` when it lists the module, else the extra that does."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if extra_for(top) is not None:
            raise MissingExtra(extra if top in EXTRAS.get(extra, ()) else extra_for(top) or extra, top, what) from None
        raise
