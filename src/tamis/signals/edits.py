"""Edit effort between a machine output and its human post-edit: HTER and character edit distance.

HTER is TER with the post-edit as the reference (Snover et al. 2006): the number of word edits
(insertions, deletions, substitutions, shifts) needed to turn the machine output into the post-edit,
divided by the post-edit's length. We use sacrebleu's TER so the figure matches the literature's;
for several turns we pool edits and lengths over the turns (corpus-level TER), which weights long
turns by their length instead of averaging per-turn ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import Levenshtein


@lru_cache(maxsize=8)
def _ter(case_sensitive: bool):
    from sacrebleu.metrics import TER

    return TER(case_sensitive=case_sensitive)


@dataclass(frozen=True, slots=True)
class EditEffort:
    """How much a person changed: word-level HTER and character-level edit distance."""

    hter: float
    word_edits: float
    ref_words: float
    char_distance: int
    char_ratio: float  # char_distance / max(1, len(post-edit))

    def to_dict(self) -> dict[str, float]:
        return {"hter": self.hter, "word_edits": self.word_edits, "ref_words": self.ref_words,
                "char_edit_distance": self.char_distance, "char_edit_ratio": self.char_ratio}


def hter(machine: str, post_edit: str, *, case_sensitive: bool = False) -> float:
    """HTER of one machine output against its post-edit (0 = untouched; can exceed 1)."""
    return edit_effort([machine], [post_edit], case_sensitive=case_sensitive).hter


def char_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (insert/delete/substitute, each costing 1)."""
    return int(Levenshtein.distance(a, b))


def edit_effort(machine_turns: Sequence[str], post_edit_turns: Sequence[str], *,
                case_sensitive: bool = False) -> EditEffort:
    """Pooled HTER and character distance over aligned turns (same count, same order).

    An empty post-edit of an empty turn costs nothing; an empty reference with a non-empty machine
    output counts every machine word as an edit (HTER is then reported against one word, not 0/0)."""
    if len(machine_turns) != len(post_edit_turns):
        raise ValueError(f"turn counts differ: {len(machine_turns)} machine vs {len(post_edit_turns)} post-edited")
    ter = _ter(case_sensitive)
    edits = 0.0
    ref_words = 0.0
    chars = 0
    ref_chars = 0
    for hyp, ref in zip(machine_turns, post_edit_turns):
        score = ter.sentence_score(hyp, [ref])
        edits += float(score.num_edits)
        ref_words += float(score.ref_length)
        chars += char_edit_distance(hyp, ref)
        ref_chars += len(ref)
    ratio = edits / ref_words if ref_words > 0 else (edits if edits else 0.0)
    return EditEffort(hter=ratio, word_edits=edits, ref_words=ref_words, char_distance=chars,
                      char_ratio=chars / max(1, ref_chars))
