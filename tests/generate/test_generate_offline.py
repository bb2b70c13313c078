"""Parsing, task files and the ROUGE-L near-copy test: no model needed."""

import pytest

from tamis.generate import NearCopyConfig, NearCopyFilter, bundled_tasks, load_task, parse_generated_text
from tamis.generate.parse import split_reasoned
from tamis.generate.prompts import DIVERSITY_PROMPT, labelled_messages
from tamis.io import DataError
from tamis.records import labelled_example


@pytest.mark.parametrize("raw, text, problem", [
    ("Sure! Here is a tweet:\n\n\"Love waiting two hours for the bus #blessed\"", "Love waiting two hours for the bus #blessed", None),
    ("Hey Marko,\n\nI just wanted to say thanks for today.", "Hey Marko, I just wanted to say thanks for today.", None),
    ("1. first text is this one\n2. second text", "first text is this one", None),
    ("Message: WIN a free cruise now, call 0800", "WIN a free cruise now, call 0800", None),
    ("   \n", None, "empty"),
    ("I'm sorry, but I cannot write spam.", None, "refusal"),
    ("[spam]", None, "empty"),
    ("Hi there", None, "too_short"),
])
def test_parse(raw, text, problem):
    parsed = parse_generated_text(raw, max_words=30)
    assert (parsed.text, parsed.problem) == (text, problem)


def test_parse_cuts_long_texts_at_a_sentence_within_the_limit():
    raw = "One two three four. Five six seven eight. " * 10
    parsed = parse_generated_text(raw, max_words=10)
    assert parsed.truncated and parsed.text == "One two three four. Five six seven eight."


@pytest.mark.parametrize("raw,text,thoughts", [
    ("thoughts: a prize scam.\ntext: WIN a prize now, call 0800", "WIN a prize now, call 0800", "thoughts: a prize scam."),
    ("Thoughts: a friend.\n**Text:** Hi mum, see you at 6", "Hi mum, see you at 6", "Thoughts: a friend.\n**"),
    ("the context: a friend, no marker", None, "the context: a friend, no marker"),
])
def test_reasoned_replies_keep_only_the_text_after_the_marker(raw, text, thoughts):
    assert split_reasoned(raw) == (text, thoughts)


def test_reasoned_prompt_asks_for_thoughts_then_the_marked_text():
    task = load_task("sms_spam")
    direct, step = (labelled_messages(task, "spam", reasoning=r)[1]["content"] for r in ("direct", "step"))
    assert "step by step" in step and "text:" in step and "step by step" not in direct


def test_bundled_tasks_load():
    assert {"sms_spam", "tweeteval_irony", "financial_phrasebank"} <= set(bundled_tasks())
    task = load_task("financial_phrasebank")
    assert list(task.labels) == ["positive", "negative", "neutral"]
    assert task.data.agreement_map["AllAgree"] == 1.0


def test_bad_task_files_name_the_field(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("name: t\nlabels: [a]\n")
    with pytest.raises(DataError, match="t.yaml: field 'labels'"):
        load_task(p)
    p.write_text("name: t\nlabels: [a, b]\ncolour: red\n")
    with pytest.raises(DataError, match="unknown field"):
        load_task(p)
    with pytest.raises(DataError, match="bundled"):
        load_task("no_such_task")


def test_prompts_carry_label_shots_and_diversity_request():
    task = load_task("sms_spam")
    shot = labelled_example("Free entry in a weekly competition!", "spam", id="s1")
    msgs = labelled_messages(task, "spam", [shot], previous=["an earlier text", "another text"])
    assert msgs[0]["role"] == "system" and "spam" in msgs[1]["content"]
    assert "Free entry" in msgs[1]["content"] and "do not copy" in msgs[1]["content"]
    assert msgs[-1]["content"] == DIVERSITY_PROMPT and msgs[-2] == {"role": "assistant", "content": "another text"}


def test_rouge_near_copy_filter_counts_copies_and_earlier_generations():
    refs = [("r1", "Congratulations you have won a free ticket to the Bahamas call now")]
    f = NearCopyFilter(NearCopyConfig(embedding_threshold=None, rouge_threshold=0.7), refs)
    results = f.check_batch([
        ("g1", "Congratulations you have won a free ticket to the Bahamas, call now!"),
        ("g2", "See you at lunch tomorrow, bring the charger please"),
        ("g3", "see you at lunch tomorrow, bring the charger please"),
        ("g4", "See you at lunch tomorrow, please bring the phone charger"),
    ])
    assert [r for r, _ in results] == ["near_copy_rouge", None, "duplicate", "near_copy_rouge"]
    assert results[0][1]["rouge_closest_id"] == "r1"
