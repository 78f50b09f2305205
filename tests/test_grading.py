"""Exact match, token F1 and the judge's reply parsing: the false positives batch scoring
used to give (a dropped minus sign, a match inside a negation) and SQuAD's F1 by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.grading import (
    PreferenceTally,
    combine_votes,
    exact_match,
    normalize,
    pairwise_prompt,
    parse_score,
    parse_winner,
    rubric_prompt,
    token_f1,
    verdicts,
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("-5", "5"),
        ("5", "-5"),
        ("The coldest reading was -5 C", "5 C"),
        ("The coldest reading was \u22125 C", "5 C"),
        ("minus 5 degrees", "5 degrees"),
        ("The total is not 1218", "1218"),
        ("The total isn't 1218.", "1218"),
        ("The total isn\u2019t 1218.", "1218"),
        ("1218 is not the total", "1218"),
        ("It was never 1218", "1218"),
        ("No station recorded 7 C", "7 C"),
        ("-15 C", "5 C"),
        ("12180", "1218"),
        ("1218.5", "1218"),
        ("Paris", "paris, France"),
    ],
)
def test_wrong_answers_are_not_matched(answer: str, expected: str) -> None:
    assert exact_match(answer, expected) is False


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("-5 C", "-5 c"),
        ("Alpha recorded -5 C.", "-5 C"),
        ("Alpha recorded \u22125 C.", "-5 C"),
        ("Alpha recorded minus 5 C.", "-5 C"),
        ("The total is 1,218.", "1218"),
        ("The total is 1218.0", "1218"),
        ("The total is not 1200 but 1218", "1218"),
        ("No, the total is 1218.", "1218"),
        ("COVID-19 cases", "19"),
        ("The answer: Paris, France.", "Paris France"),
        ("not applicable", "Not applicable"),
        ("", ""),
    ],
)
def test_right_answers_are_matched(answer: str, expected: str) -> None:
    assert exact_match(answer, expected) is True


def test_normalization_drops_case_punctuation_and_articles_but_keeps_signs() -> None:
    assert normalize("The  Harbor's gauge: -4.20 m, +3 and 1,000!") == "harbor's gauge -4.2 m 3 and 1000"


@pytest.mark.parametrize(
    ("answer", "expected", "f1"),
    [
        # 2 shared tokens; precision 2/4, recall 2/2 -> 2 * 0.5 * 1 / 1.5
        ("Alpha recorded -5 C", "-5 C", 0.6667),
        # "5" is not "-5": no shared token
        ("-5", "5", 0.0),
        # articles go; "gauge" and "harbor" shared of 3 and 2 -> p 2/3, r 1
        ("the harbor gauge", "a harbor gauge", 1.0),
        ("harbor gauge reads", "harbor gauge", 0.8),
        # repeated tokens count as often as both sides have them (SQuAD's Counter overlap)
        ("storm storm calm", "storm calm calm", 0.6667),
        ("", "", 1.0),
        ("anything", "", 0.0),
    ],
)
def test_token_f1_is_squads(answer: str, expected: str, f1: float) -> None:
    assert token_f1(answer, expected) == f1


@given(st.text(max_size=60))
def test_an_answer_always_matches_itself(text: str) -> None:
    assert exact_match(text, text)
    assert token_f1(text, text) == 1.0


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(["", "The value is ", "Total: "]))
def test_a_negative_number_never_matches_its_absolute_value(value: int, prefix: str) -> None:
    assert not exact_match(f"{prefix}-{value}", str(value))
    assert not exact_match(f"{prefix}{value}", f"-{value}")
    assert exact_match(f"{prefix}-{value}", f"-{value}")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["not", "never", "isn't"]))
def test_a_negated_number_never_matches(value: int, negation: str) -> None:
    assert not exact_match(f"The total is {negation} {value}", str(value))


@given(st.text(max_size=40), st.text(max_size=40))
def test_f1_is_symmetric_and_bounded(a: str, b: str) -> None:
    assert token_f1(a, b) == token_f1(b, a)
    assert 0.0 <= token_f1(a, b) <= 1.0


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("The answer addresses it.\nScore: 4", 4),
        ("Reasoning... **Score:** 5", 5),
        ("score=2", 2),
        ("I'd give it 3/5.", 3),
        ("Score: 2\nOn reflection, Score: 3", 3),
        ("Excellent answer.", None),
        ("Score: 7", None),
    ],
)
def test_judge_scores_are_read_from_the_last_score_line(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


def test_pairwise_votes_count_only_when_both_orders_agree() -> None:
    assert parse_winner("A is more complete.\nWinner: A") == "a"
    assert parse_winner("Winner: tie") == "tie"
    assert parse_winner("Both fine.") is None
    assert combine_votes("a", "b") == "a"  # A first, then A again as B when swapped
    assert combine_votes("b", "a") == "b"
    assert combine_votes("a", "a") == "tie"  # the judge picked a position, not an answer
    assert combine_votes("a", None) == "tie"
    assert combine_votes("tie", "tie") == "tie"


def test_preferences_are_tallied_from_both_sides_with_ties_as_half() -> None:
    seen = verdicts([("rlm", "keyword", "rlm"), ("rlm", "vector", "tie"), ("keyword", "vector", "vector")])
    assert seen == {
        "rlm": {"keyword": "win", "vector": "tie"},
        "keyword": {"rlm": "loss", "vector": "loss"},
        "vector": {"rlm": "tie", "keyword": "win"},
    }
    assert PreferenceTally.of(seen["rlm"].values()) == PreferenceTally(wins=1, ties=1, losses=0, win_rate=0.75)
    assert PreferenceTally.of(seen["keyword"].values()).win_rate == 0.0
    assert PreferenceTally.of([]) == PreferenceTally(win_rate=None)


def test_rubric_prompts_carry_question_answer_and_sections() -> None:
    prompt = rubric_prompt("groundedness", "Coldest?", "Alpha, -5 C", "## Alpha log\nLowest: -5 C")
    assert "Coldest?" in prompt and "Alpha, -5 C" in prompt and "## Alpha log" in prompt and "Score: N" in prompt
    assert "cites no sections" in rubric_prompt("groundedness", "q", "a")
    assert "reference answer is: -5" in pairwise_prompt("q", "x", "y", expected="-5")
    assert "reference" not in pairwise_prompt("q", "x", "y")
