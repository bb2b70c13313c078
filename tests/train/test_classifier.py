"""The encoder classifier: the bundled MiniLM learns SMS spam from a few examples."""

import pytest

from tamis.train.classifier import ClassifierConfig, classification_metrics, evaluate_classifier, train_classifier


def test_metrics_count_absent_labels_in_macro_f1():
    m = classification_metrics(["a", "a", "b"], ["a", "a", "a"], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)


def test_rejects_unusable_training_sets():
    from tamis.records import labelled_example

    with pytest.raises(ValueError, match="at least two labels"):
        train_classifier([labelled_example("only one", "a")])
    with pytest.raises(ValueError, match="not in the label set"):
        train_classifier([labelled_example("x y", "a"), labelled_example("z", "b")], labels=["a", "c"])


@pytest.mark.slow
def test_minilm_learns_spam_and_is_seeded(sms_pool, tmp_path):
    pool, test = sms_pool
    train = pool[:40] + pool[200:240]  # 40 ham + 40 spam
    config = ClassifierConfig(max_steps=15, batch_size=16, max_length=48, seed=3)
    clf = train_classifier(train, config)
    result = evaluate_classifier(clf, test)
    assert result["n"] == 120 and len(result["predictions"]) == 120
    assert result["accuracy"] > 0.75 and result["macro_f1"] > 0.7  # chance is 0.5 on this balanced test
    assert clf.loss_history[-1] < clf.loss_history[0]
    again = train_classifier(train, config)
    assert again.loss_history == pytest.approx(clf.loss_history, rel=1e-4)
    path = clf.save(tmp_path / "clf")
    assert (path / "config.json").is_file()
