"""The prompts of Li et al. (2023), written for tamis: context, generation, diversity, few-shot."""

from __future__ import annotations

from collections.abc import Sequence

from tamis.generate.tasks import TaskConfig
from tamis.records import Example

DIVERSITY_PROMPT = "Now write another one that is clearly more diverse than the ones before: a different topic, wording and situation."


def context_prompt(task: TaskConfig) -> str:
    return task.context.strip() or f"You write realistic examples of {task.text_kind}s."


#: reasoning="step": the generator first thinks about what such a text contains, then writes it after
#: a fixed marker, so the reasoning never ends up in the data (parse.split_reasoned takes what follows it).
TEXT_MARKER = "text:"


def generation_prompt(task: TaskConfig, label: str, reasoning: str = "direct") -> str:
    description = task.labels.get(label, "")
    what = f"{label} ({description})" if description else label
    style = f" Style: {task.style}." if task.style else ""
    ask = f"Write one {task.text_kind} whose label is: {what}.{style} Use at most {task.max_words} words. "
    if reasoning == "step":
        return (ask + f"First think step by step in one or two sentences: who writes such a {task.text_kind}, "
                f"about what, and what makes its label {label}. Then write the {task.text_kind} on a new line "
                f"starting with '{TEXT_MARKER}'. Use exactly this template:\nthoughts: [your reasoning]\n"
                f"{TEXT_MARKER} [the {task.text_kind}]")
    return ask + f"Reply with the {task.text_kind} only, no title, no quotes, no explanation."


def few_shot_block(task: TaskConfig, shots: Sequence[Example]) -> str:
    lines = [f"Here are real examples of {task.text_kind}s with their labels:"]
    lines += [f"- [{ex.label}] {(ex.text or '').strip()}" for ex in shots]
    lines.append("Imitate their content, style and length, but do not copy, modify or rewrite any of them.")
    return "\n".join(lines)


def labelled_messages(task: TaskConfig, label: str, shots: Sequence[Example] = (),
                      previous: Sequence[str] = (), reasoning: str = "direct") -> list[dict[str, str]]:
    """The conversation for one generation; with ``previous`` texts it ends with the diversity prompt.

    ``reasoning="step"`` asks for a short chain of thought before the text (the earlier texts shown
    for diversity are the parsed texts, without their reasoning)."""
    user = generation_prompt(task, label, reasoning)
    if shots:
        user = few_shot_block(task, shots) + "\n\n" + user
    messages = [{"role": "system", "content": context_prompt(task)}, {"role": "user", "content": user}]
    for i, text in enumerate(previous):
        messages.append({"role": "assistant", "content": text})
        last = i == len(previous) - 1
        messages.append({"role": "user", "content": DIVERSITY_PROMPT if last else "Write another one."})
    return messages
