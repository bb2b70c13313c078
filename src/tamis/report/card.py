"""The dataset card every curated output gets: README.md with the Hub's YAML header, then provenance.

The header (license, task_categories, size_categories, pretty_name, tags, and a ``configs`` entry
naming the curated file, so the Hub's viewer and ``load_dataset(REPO)`` load that file and not the
decisions beside it) is what ``push_to_hub`` needs; the body says where the data came from, which
signals and policy decided, how many rows were kept, edited and dropped and why, and links the run's
manifest. :func:`push_to_hub` uploads such a folder with huggingface_hub and fails with a
ConfigError naming what is missing (a token, the network) instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tamis.errors import ConfigError

CARD_NAME = "README.md"
# the Hub's size buckets (https://huggingface.co/docs/hub/datasets-cards)
SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
TASKS = {"translation": ["translation"], "labelled": ["text-classification"]}
RULE = re.compile(r"\[(?:keep|drop) [^\]]+\]")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# what a push uploads of a run folder: the card, the curated data, the decisions and the manifest
UPLOADED = ("README.md", "decisions.jsonl", "dropped.jsonl", "manifest.json")


def size_category(n: int) -> str:
    for limit, name in SIZE_BUCKETS:
        if n < limit:
            return name
    return "n>1B"


def task_categories(format: str) -> list[str]:
    """The Hub task of data in a tamis format (chat formats train text generation)."""
    return TASKS.get(format, ["text-generation"])


def reason_groups(reasons: Iterable[str], top: int = 10) -> list[tuple[str, int]]:
    """Drop reasons counted by what decided them: the policy rules a row failed, else the reason with
    its numbers masked (so "judge 0.31 < 0.5" and "judge 0.12 < 0.5" count together)."""
    keys = []
    for reason in reasons:
        rules = RULE.findall(reason or "")
        keys.append("; ".join(rules) if rules else NUMBER.sub("#", (reason or "no reason given").strip())[:160])
    return Counter(keys).most_common(top)


def dataset_card(
    *,
    data_file: str,
    n_rows: int,
    format: str,
    source: str,
    command: str,
    decisions: Iterable[Any] = (),
    config: Mapping[str, Any] | None = None,
    counts: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    policy: str | None = None,
    pretty_name: str | None = None,
    license: str = "unknown",
    manifest: str = "manifest.json",
    extra_files: Mapping[str, str] | None = None,
) -> str:
    """The card's text: YAML header, then provenance. ``decisions`` are Decision objects (or dicts)."""
    decisions = [d if isinstance(d, Mapping) else d.to_dict() for d in decisions]
    actions = Counter(d.get("action") for d in decisions)
    signals = list(dict.fromkeys(k for d in decisions for k in (d.get("scores") or {})))
    steps = list(dict.fromkeys(d.get("step") for d in decisions if d.get("step")))
    name = pretty_name or f"{_stem(source)} ({command})"
    header: dict[str, Any] = {
        "pretty_name": name,
        "license": license,
        "task_categories": task_categories(format),
        "size_categories": [size_category(n_rows)],
        "tags": ["tamis", command],
    }
    if "." in Path(data_file).name:  # a file the Hub can load (a save_to_disk folder it cannot)
        header["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": data_file}]}]
    lines = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {name}", "",
             f"{n_rows} examples ({format} format) curated with [tamis](https://pypi.org/project/tamis/) "
             f"`{command}` from `{source}`. Every row that was not kept is listed with its reason in "
             "`dropped.jsonl`; every decision, with the scores behind it, in `decisions.jsonl`.", "",
             "## Source", "", f"- data: `{source}`", f"- format: {format}"]
    counts = dict(counts or {})
    if "read" in counts:
        rejected = counts.get("rejected", 0)
        lines.append(f"- rows read: {counts['read']}, usable: {counts.get('kept', '?')}, rejected as malformed: "
                     f"{rejected}" + (" (kept with their reasons in `quarantine.jsonl`, not uploaded)" if rejected else ""))
    lines += ["", "## Curation", ""]
    if steps:
        lines.append(f"- step: {', '.join(f'`{s}`' for s in steps)}")
    policy = policy or _policy(config or {})
    if policy:
        lines.append(f"- policy: {policy}")
    if signals:
        lines.append(f"- signals: {', '.join(_signal(s) for s in signals)}")
    if thresholds:
        lines.append("- thresholds: " + ", ".join(f"`{k}` = {_num(v)}" for k, v in thresholds.items()))
    if config:
        lines += ["", "Settings of the run:", "", "```yaml",
                  yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True).rstrip(), "```"]
    lines += ["", "## Counts", "", "| outcome | examples |", "|---|---|"]
    for action in ("keep", "edit", "drop", "review"):
        if actions.get(action):
            lines.append(f"| {action} | {actions[action]} |")
    lines.append(f"| **in this data set** | **{n_rows}** |")
    not_kept = [d.get("reason", "") for d in decisions if d.get("action") in ("drop", "review")]
    if not_kept:
        lines += ["", "## Why examples were left out", "", "| reason | examples |", "|---|---|"]
        lines += [f"| {_cell(reason)} | {n} |" for reason, n in reason_groups(not_kept)]
    lines += ["", "## Files", "", f"- `{data_file}`: the curated data",
              "- `decisions.jsonl`: one decision per example (action, step, reason, scores)",
              "- `dropped.jsonl`: the examples left out, with their reasons",
              f"- [`{manifest}`]({manifest}): settings, library versions, models, timings and counts of the run"]
    for fname, what in (extra_files or {}).items():
        lines.append(f"- `{fname}`: {what}")
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path, text: str) -> Path:
    from tamis.store import atomic_write_text

    path = Path(folder) / CARD_NAME
    atomic_write_text(path, text)
    return path


def card_header(text: str) -> dict[str, Any]:
    """The YAML header of a card (what the Hub reads)."""
    if not text.startswith("---\n"):
        raise ValueError("a dataset card starts with a '---' line")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def push_to_hub(folder: str | Path, repo: str, *, data_file: str | None = None, token: str | None = None,
                private: bool = False, endpoint: str | None = None) -> str:
    """Upload a curated run folder (card, data, decisions, dropped rows, manifest) as a Hub dataset repo.

    Needs a token (``token``, ``$HF_TOKEN`` or a ``huggingface-cli login``) and the network; without
    either it raises ConfigError saying so, and the folder stays as it is. Returns the repo's URL."""
    folder = Path(folder)
    if not (folder / CARD_NAME).is_file():
        raise ConfigError(f"{folder} has no {CARD_NAME}; push the output folder of filter, correct or select")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ConfigError(f"--push-to-hub {repo!r}: give the repository as OWNER/NAME")
    try:
        import huggingface_hub
        from huggingface_hub import HfApi
    except ImportError:  # pragma: no cover - a dependency of datasets
        raise ConfigError("--push-to-hub needs huggingface_hub: pip install huggingface_hub") from None
    token = token or os.environ.get("HF_TOKEN") or huggingface_hub.get_token()
    keep = f"the curated data and its card stay in {folder}"
    if not token:
        raise ConfigError(f"--push-to-hub {repo}: no Hugging Face token; set HF_TOKEN or run `hf auth login`, "
                          f"then run the command again ({keep}, nothing was uploaded)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ConfigError(f"--push-to-hub {repo}: HF_HUB_OFFLINE is set, so nothing can be uploaded ({keep})")
    patterns = list(UPLOADED)
    if data_file:
        patterns += [data_file, f"{data_file}/**"]
    api = HfApi(token=token, endpoint=endpoint)
    try:
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset", allow_patterns=patterns,
                          commit_message="tamis: curated data with its dataset card")
    except Exception as exc:  # network down, bad token, no rights: one clear line, not a traceback
        raise ConfigError(f"--push-to-hub {repo}: the upload failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); check the token, the network "
                          f"and the repository name ({keep})") from None
    return str(url)


def _stem(source: str) -> str:
    name = Path(str(source)).name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or str(source)


def _policy(config: Mapping[str, Any]) -> str:
    parts = [f"keep `{r}`" for r in config.get("keep") or []] + [f"drop `{r}`" for r in config.get("drop") or []]
    if not parts and isinstance(config.get("rule"), Mapping):
        rule = config["rule"]
        parts = [", ".join(f"{k}={v}" for k, v in rule.items() if v is not None)]
    if not parts and isinstance(config.get("selection"), Mapping):
        parts = ["G-DIG selection: " + ", ".join(f"{k}={v}" for k, v in config["selection"].items() if v is not None)]
    return "; ".join(parts)


def _signal(name: str) -> str:
    try:
        from tamis.signals.registry import get_signal

        spec = get_signal(name)
        return f"`{name}` ({spec.direction} is better)"
    except Exception:  # an unregistered column of a score file
        return f"`{name}`"


def _num(value: Any) -> str:
    if isinstance(value, Mapping):  # one threshold per label
        return "; ".join(f"{k!r}: {_num(v)}" for k, v in value.items())
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
