"""Project guidelines: markdown rendered to safe HTML (raw HTML off, javascript: links refused)."""

from __future__ import annotations

from functools import lru_cache

from markupsafe import Markup


@lru_cache(maxsize=64)
def markdown_html(text: str) -> Markup:
    """``text`` as HTML. markdown-it with html disabled escapes any tags in the text, and its link
    validation drops javascript:, vbscript:, file: and data: (non-image) URLs."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    return Markup(md.render(text or ""))  # noqa: S704 - produced by markdown-it with raw HTML disabled
