"""Grading answers against an expected answer, and the fixed rubrics of the LLM judge.

Pure functions, no I/O: exact match and SQuAD-style token F1 (both sign-aware, so `5`
is not `-5`), the judge's rubric prompts and the parsing of its replies. The judge's
model calls live in shared.judge.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel

# Typographic forms that mean the same as their ASCII counterparts in an answer.
EQUIVALENT_CHARACTERS = str.maketrans(
    {"\u2212": "-", "\u2013": "-", "\u2010": "-", "\u2011": "-", "\u2019": "'", "\u2018": "'", "\u02bc": "'"}
)
# A number keeps its sign unless the sign joins it to a word ("COVID-19", "5-10").
TOKEN = re.compile(
    r"(?P<number>(?<![\w.])[-+]?\d+(?:,\d{3})*(?:\.\d+)?)"
    r"|(?P<word>[^\W_]+(?:'[^\W_]+)*)"
    r"|(?P<boundary>[.;:!?,()\[\]]|\s[-\u2014]\s)"
)
ARTICLES = frozenset({"a", "an", "the"})
NEGATIONS = frozenset({"not", "no", "never", "neither", "nor", "none", "without", "cannot", "nobody", "nothing", "nowhere"})
# Words after which a negation no longer applies: "not 12 but 1218".
CONTRASTS = frozenset({"but", "however", "although", "though", "whereas", "instead", "rather"})
COPULAS = frozenset({"is", "was", "are", "were", "be", "being", "been"})
SIGN_WORDS = frozenset({"minus", "negative"})
NEGATION_REACH = 3


@dataclass(frozen=True)
class Token:
    text: str
    clause: int


def _is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


def _number(text: str) -> str:
    """One spelling per number: no thousands separators, no '+', no trailing zeros."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    if value == 0:
        return "0"
    canonical = format(value.normalize(), "f")
    return canonical.rstrip("0").rstrip(".") if "." in canonical else canonical


def tokens(text: str) -> list[Token]:
    """Normalized tokens (case, Unicode forms, punctuation and articles do not count), each
    with the clause it is in, so a negation is only read within its own clause."""
    folded = unicodedata.normalize("NFKC", text).translate(EQUIVALENT_CHARACTERS).casefold()
    out: list[Token] = []
    clause = 0
    for match in TOKEN.finditer(folded):
        number, word = match.group("number"), match.group("word")
        if number is not None:
            value = _number(number)
            if out and out[-1].text in SIGN_WORDS and out[-1].clause == clause and value[0] not in "-0":
                out[-1] = Token("-" + value, clause)
            else:
                out.append(Token(value, clause))
        elif word is None or word in CONTRASTS:
            clause += 1
        elif word not in ARTICLES:
            out.append(Token(word, clause))
    return out


def normalize(text: str) -> str:
    """The normalized form exact match compares."""
    return " ".join(t.text for t in tokens(text))


def _negated(answer: list[Token], start: int, end: int) -> bool:
    """A negation just before the span, or right after it ("1218 is not"), in its clause."""
    clause = answer[start].clause
    before = [t.text for t in answer[max(0, start - NEGATION_REACH) : start] if t.clause == clause]
    if any(_is_negation(w) for w in before):
        return True
    after = [t.text for t in answer[end : end + 2] if t.clause == answer[end - 1].clause]
    if after and after[0] in COPULAS:
        after = after[1:]
    return bool(after) and _is_negation(after[0])


def exact_match(answer: str, expected: str) -> bool:
    """The normalized answer is the expected one, or says it as whole tokens outside a
    negation: "Alpha recorded -5 C" matches "-5 c"; "-5" does not match "5", nor does
    "The total is not 1218" match "1218"."""
    got, want = tokens(answer), tokens(expected)
    got_words, want_words = [t.text for t in got], [t.text for t in want]
    if got_words == want_words:
        return True
    if not want_words:
        return False
    width = len(want_words)
    for start in range(len(got_words) - width + 1):
        if got_words[start : start + width] == want_words and not _negated(got, start, start + width):
            return True
    return False


def token_f1(answer: str, expected: str) -> float:
    """SQuAD's token F1 over the same normalized tokens as exact match."""
    got, want = [t.text for t in tokens(answer)], [t.text for t in tokens(expected)]
    if not got or not want:
        return float(got == want)
    same = sum((Counter(got) & Counter(want)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(got), same / len(want)
    return round(2 * precision * recall / (precision + recall), 4)


# --- the LLM judge's rubrics --------------------------------------------------------------

Rubric = Literal["relevance", "groundedness", "coherence"]
RUBRICS: tuple[Rubric, ...] = ("relevance", "groundedness", "coherence")
Winner = Literal["a", "b", "tie"]

JUDGE_SYSTEM_PROMPT = """\
You grade answers to questions about a document collection. Follow the rubric exactly,
judge only what is in the message, and do not reward length. End your reply with one line
in the format the rubric asks for."""

RUBRIC_PROMPTS: dict[Rubric, str] = {
    "relevance": """\
Rubric: RELEVANCE. Does the answer address the question that was asked?
5 - answers the question fully and directly.
4 - answers it, with a minor omission or some irrelevant material.
3 - answers part of it, or answers it vaguely.
2 - mostly about something else; touches the question only in passing.
1 - does not address the question, or refuses without reason.

Question:
{question}

Answer:
{answer}

Give one sentence of reasoning, then a last line `Score: N` with N from 1 to 5.""",
    "groundedness": """\
Rubric: GROUNDEDNESS. Is every claim of the answer supported by the cited sections below?
5 - every claim is stated in, or follows directly from, the sections.
4 - nearly all claims are supported; one minor detail is not.
3 - some claims are supported, others are not found in the sections.
2 - most claims are not supported by the sections.
1 - the answer contradicts the sections, or no section supports it (or none was cited).

Question:
{question}

Answer:
{answer}

Cited sections:
{sections}

Give one sentence of reasoning, then a last line `Score: N` with N from 1 to 5.""",
    "coherence": """\
Rubric: COHERENCE. Is the answer clear, consistent and well organised, whether or not it is correct?
5 - clear, consistent and easy to follow.
4 - clear, with small lapses in flow or wording.
3 - understandable, but disorganised or partly contradictory.
2 - hard to follow; contradicts itself.
1 - incoherent.

Question:
{question}

Answer:
{answer}

Give one sentence of reasoning, then a last line `Score: N` with N from 1 to 5.""",
}

PAIRWISE_PROMPT = """\
Rubric: PREFERENCE. Two answers to the same question follow. Which one answers it better:
more correct, more complete, better supported? Length alone is not better.{expected}

Question:
{question}

Answer A:
{a}

Answer B:
{b}

Give one sentence of reasoning, then a last line `Winner: A`, `Winner: B` or `Winner: tie`."""

SCORE_LINE = re.compile(r"score\s*[:=]?\s*\**\s*([1-5])(?:\s*/\s*5)?\b", re.IGNORECASE)
OUT_OF_FIVE = re.compile(r"\b([1-5])\s*/\s*5\b")
WINNER_LINE = re.compile(r"winner\s*[:=]?\s*\**\s*(a|b|tie)\b", re.IGNORECASE)
NO_SECTIONS = "(the answer cites no sections)"


def rubric_prompt(rubric: Rubric, question: str, answer: str, sections: str = "") -> str:
    return RUBRIC_PROMPTS[rubric].format(question=question, answer=answer, sections=sections or NO_SECTIONS)


def pairwise_prompt(question: str, a: str, b: str, expected: str | None = None) -> str:
    hint = f"\nA reference answer is: {expected}" if expected else ""
    return PAIRWISE_PROMPT.format(question=question, a=a, b=b, expected=hint)


def parse_score(reply: str) -> int | None:
    """The 1-5 score of a rubric reply (the last `Score: N` line wins); None if it gave none."""
    found = SCORE_LINE.findall(reply) or OUT_OF_FIVE.findall(reply)
    return int(found[-1]) if found else None


def parse_winner(reply: str) -> Winner | None:
    found = WINNER_LINE.findall(reply)
    return found[-1].lower() if found else None  # type: ignore[return-value]


def combine_votes(first: Winner | None, swapped: Winner | None) -> Winner:
    """One vote with A/B as given and one with them swapped (judges favour a position):
    a winner only when both votes name the same answer."""
    unswapped = {"a": "b", "b": "a", "tie": "tie", None: None}[swapped]
    if first is not None and first == unswapped:
        return first
    return "tie"


Verdict = Literal["win", "tie", "loss"]


def verdicts(preferences: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, Verdict]]:
    """Each (a, b, winner) preference seen from both sides: what every label got against each
    other label ("tie" unless the winner is one of the two)."""
    seen: dict[str, dict[str, Verdict]] = {}
    for a, b, winner in preferences:
        seen.setdefault(a, {})[b] = "win" if winner == a else "loss" if winner == b else "tie"
        seen.setdefault(b, {})[a] = "win" if winner == b else "loss" if winner == a else "tie"
    return seen


class PreferenceTally(BaseModel):
    """How one strategy fared in the judge's pairwise preferences; `win_rate` counts a tie as half."""

    wins: int = 0
    ties: int = 0
    losses: int = 0
    win_rate: float | None = None

    @classmethod
    def of(cls, found: Iterable[Verdict]) -> PreferenceTally:
        counted = Counter(found)
        wins, ties, losses = counted["win"], counted["tie"], counted["loss"]
        total = wins + ties + losses
        return cls(wins=wins, ties=ties, losses=losses, win_rate=round((wins + ties / 2) / total, 4) if total else None)


class JudgeScores(BaseModel):
    """The judge's 1-5 scores of one answer; None where the judge gave no usable score."""

    relevance: int | None = None
    groundedness: int | None = None
    coherence: int | None = None
