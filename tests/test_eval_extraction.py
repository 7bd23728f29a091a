"""Answer-extraction rules on a table of known replies, and the ranked rule cross-checked
against the installed lmms-eval's own parser."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vidlm.errors import ConfigError
from vidlm.eval.extraction import DEFAULT_RULE, get_rule, list_rules

OPTIONS = ("cats", "dogs", "birds", "fish")

# reply -> (robust, lmms_eval_first_capital, lmms_eval_ranked)
TABLE: list[tuple[str, tuple[str, str, str]]] = [
    ("The answer is (B).", ("B", "B", "B")),
    ("B", ("B", "B", "B")),
    ("b) dogs", ("B", "", "")),
    ("At first the man walks away.", ("", "A", "A")),
    ("", ("", "", "")),
    ("   ", ("", "", "")),
    ("dogs", ("B", "", "")),
    ("Dogs.", ("B", "D", "D")),  # the older rules read the capital D of "Dogs"
    ("A man is holding the fish", ("D", "A", "A")),
    ("I think the answer is C because B is wrong.", ("C", "C", "B")),
    ("Best option: (C", ("C", "B", "C")),  # older rule: the B of "Best" (prefix not removed)
    ("The best answer is C", ("C", "C", "C")),  # older rule: this prefix is removed
    ("None of the options.", ("", "", "")),
    ("The answer is b", ("B", "", "")),
    ("(D) fish", ("D", "D", "D")),
    ("D. fish", ("D", "D", "D")),
    ("Answer: A", ("A", "A", "A")),
    ("<think>maybe A or B</think> C", ("C", "A", "C")),
    ("Both B and C look right.", ("", "B", "C")),
    ("E", ("", "", "")),
]


@pytest.mark.parametrize(("reply", "expected"), TABLE)
@pytest.mark.parametrize("column", [0, 1, 2])
def test_rules_on_known_replies(reply: str, expected: tuple[str, str, str], column: int) -> None:
    name = ("robust", "lmms_eval_first_capital", "lmms_eval_ranked")[column]
    assert get_rule(name)(reply, OPTIONS) == expected[column], (name, reply)


def test_registry_names_versions_and_default() -> None:
    assert DEFAULT_RULE == "robust"
    assert set(list_rules()) >= {"robust", "lmms_eval_first_capital", "lmms_eval_ranked"}
    for name in list_rules():
        rule = get_rule(name)
        assert rule.version and rule.summary and rule.name == name
    with pytest.raises(ConfigError, match="unknown extraction rule 'nope'"):
        get_rule("nope")


def test_letters_outside_the_items_options_are_never_returned() -> None:
    three = ("red", "green", "blue")
    for name in list_rules():
        assert get_rule(name)("D", three) == "", name
        assert get_rule(name)("C", three) == "C", name


def _lmms_eval_ranked_parser():
    spec = importlib.util.find_spec("lmms_eval")
    assert spec is not None and spec.submodule_search_locations, "lmms-eval is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "tasks/_task_utils/mcq_extract.py"
    mod_spec = importlib.util.spec_from_file_location("lmms_mcq_extract", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.extract_mcq_answer


CROSS_CHECK = [reply for reply, _ in TABLE] + [
    "C.", "(A)", "Option B is correct", "The correct answer is D. fish", "B: dogs",
    "I choose A", "My answer is (C) birds", "A) cats", "cats, so A", "Answer: B.",
    "\"B\"", "The best answer is: D", "A, B, or C", "In the video A and then D", "C)",
]


def test_ranked_rule_matches_lmms_eval_parser() -> None:
    reference = _lmms_eval_ranked_parser()
    ours = get_rule("lmms_eval_ranked")
    for reply in CROSS_CHECK:
        assert ours(reply, OPTIONS) == reference(reply, choices=list("ABCD")), reply
