"""What an OpenAI-compatible server says back when a request fails: refusals that retrying cannot
help, a context limit worded the way OpenAI, vLLM and llama-cpp-python's server word it, the
``Retry-After`` delay, and the server's own error message (``tamis.models.openai_http`` acts on them).
"""

from __future__ import annotations

import email.utils
import re
import time

import httpx

from tamis.models.base import ModelError


class RequestRejected(ModelError):
    """The server refused the request with a 4xx other than 429; retrying cannot help."""


# OpenAI, vLLM and llama-cpp-python's server all word a too-long request this way (code
# "context_length_exceeded" where they give one)
CONTEXT_EXCEEDED = re.compile(r"context_length_exceeded|maximum context length is (\d+)|exceeds? (the )?context",
                              re.IGNORECASE)


def context_exceeded_note(err: RequestRejected) -> str | None:
    """The note for a scoring request the server refused as longer than its context, else None."""
    match = CONTEXT_EXCEEDED.search(str(err))
    if match is None:
        return None
    limit = next((g for g in match.groups() if g and g.isdigit()), None)
    context = f"the server's {limit}-token context" if limit else "the server's context"
    return (f"skipped: prompt + response are longer than {context} (the server refused it: {err}); "
            "not scored; a llamacpp: or transformers: backend truncates the prompt from the left instead")


class Cancelled(ModelError):
    """Another request of the same batch failed for good, so this one stopped (never reported)."""


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:500]
    return str(err)[:500]
