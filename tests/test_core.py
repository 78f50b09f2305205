"""The RLM core's pure parts: reply parsing, output truncation, corpus loading,
settings and request bounds, payload references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.config import Settings
from shared.corpus import CorpusError, load_corpus_path, load_index, save_corpus, section_titles
from shared.models import QueryRequest
from shared.payloads import INLINE_LIMIT, TextRef
from shared.protocol import parse_reply, truncate_output
from shared.storage import FileStore


def test_repl_and_python_blocks_join_into_one_cell() -> None:
    reply = "Look first.\n```repl\nx = 1\n```\nthen\n```python\nprint(x)\n```\n```bash\nrm -rf /\n```"
    parsed = parse_reply(reply)
    assert parsed.code == "x = 1\n\nprint(x)"
    assert parsed.final_text is None


def test_final_in_prose_ends_without_code() -> None:
    assert parse_reply('I am sure now.\nFINAL("42 apples")').final_text == "42 apples"
    assert parse_reply("FINAL(the harbor, on 2 March)").final_text == "the harbor, on 2 March"


def test_final_var_in_prose_reads_the_variable_in_the_repl() -> None:
    parsed = parse_reply("Done: FINAL_VAR(answer)")
    assert parsed.code == "FINAL_VAR('answer')"


def test_prose_final_does_not_override_code() -> None:
    parsed = parse_reply("```repl\nFinal = compute()\n```\nFINAL(guess)")
    assert parsed.code == "Final = compute()" and parsed.final_text is None


@pytest.mark.parametrize("reply", [None, "", "   ", "I think the answer is in section 3.", "```repl\n\n```"])
def test_empty_or_codeless_replies_ask_for_nothing(reply: str | None) -> None:
    assert parse_reply(reply).is_empty


def test_unterminated_block_still_runs() -> None:
    assert parse_reply("```repl\nprint(len(context))").code == "print(len(context))"


@given(st.text(), st.integers(min_value=100, max_value=5000))
def test_truncation_fits_the_limit_and_keeps_short_text(text: str, limit: int) -> None:
    out = truncate_output(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert f"of {len(text)} chars cut" in out
        assert text.startswith(out.split("\n[... ")[0])


def test_corpus_from_folder_jsonl_and_text(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("alpha", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("beta", encoding="utf-8")
    (folder / "skip.bin").write_bytes(b"\x00")
    text, docs = load_corpus_path(folder)
    assert text == "## a.md\nalpha\n\n## sub/b.txt\nbeta"
    assert [d.id for d in docs] == ["a.md", "sub/b.txt"]

    lines = tmp_path / "docs.jsonl"
    lines.write_text(json.dumps({"title": "T", "content": "C", "id": "7"}) + "\n\n", encoding="utf-8")
    assert load_corpus_path(lines) == ("## T\nC", [docs[0].model_validate({"title": "T", "content": "C", "id": "7"})])

    plain = tmp_path / "plain.txt"
    plain.write_text("## x\n1\n## y\n2", encoding="utf-8")
    text, docs = load_corpus_path(plain)
    assert docs is None and section_titles(text) == ["x", "y"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.txt", None, "does not exist"),
        ("empty.txt", b"  \n", "is empty"),
        ("latin.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
        ("bad.jsonl", b'{"title": "x"}\n', "line 1"),
        ("broken.jsonl", b"{oops\n", "line 1"),
    ],
)
def test_bad_corpora_say_what_is_wrong(tmp_path: Path, name: str, content: bytes | None, problem: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=problem):
        load_corpus_path(path)


def test_corpus_is_stored_once_with_its_index(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = save_corpus(store, "## a\n1\n\n## b\n2")
    assert save_corpus(store, "## a\n1\n\n## b\n2") == first
    assert load_index(store, first).sections == {"a": None, "b": None}
    with pytest.raises(CorpusError, match="no stored corpus"):
        load_index(store, "0" * 64)


def test_long_text_travels_by_reference(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    short = TextRef.of("short", store)
    long = TextRef.of("x" * (INLINE_LIMIT + 1), store)
    assert short.key is None and short.resolve(store) == "short"
    assert long.key is not None and len(long.text) < INLINE_LIMIT
    assert long.resolve(store) == "x" * (INLINE_LIMIT + 1)


def test_settings_keep_the_seed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_PROJECT_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("MODEL_PROVIDER", "azure")
    monkeypatch.setenv("RLM_MAX_DEPTH", "3")
    monkeypatch.setenv("RLM_TRUNCATE_CHARS", "5000")
    settings = Settings()
    assert settings.model_base_url == "https://example.openai.azure.com"
    assert settings.max_depth == 3 and settings.truncate_chars == 5000
    assert settings.model_configured


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"MODEL_PROVIDER": "anthropic"}, "MODEL_PROVIDER"),
        ({"MODEL_PROVIDER": "openai"}, "MODEL_BASE_URL"),
        ({"RLM_MAX_DEPTH": "-1"}, "RLM_MAX_DEPTH"),
        ({"RLM_MAX_ITERATIONS": "many"}, "RLM_MAX_ITERATIONS"),
    ],
)
def test_bad_settings_are_named(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str) -> None:
    for name in ("MODEL_PROVIDER", "MODEL_BASE_URL", "AZURE_PROJECT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_query_request_bounds() -> None:
    QueryRequest(question="q", corpus="text", options={"max_depth": 4, "max_iterations": 50})
    with pytest.raises(ValidationError):
        QueryRequest(question="q", corpus="text", options={"max_iterations": 51})
    with pytest.raises(ValidationError):
        QueryRequest(question="", corpus="text")
    with pytest.raises(ValidationError, match="exactly one"):
        QueryRequest(question="q")
