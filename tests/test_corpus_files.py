"""Corpus files as users hand them over: byte-order marks, FIFOs and devices, and reading
one section of a stored corpus back by its title."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from shared.corpus import CorpusError, load_corpus_path, render_documents, save_corpus, section_text
from shared.models import Document
from shared.storage import FileStore

BOM = "\ufeff".encode()


@pytest.mark.parametrize("name", ["notes.txt", "notes.md"])
def test_a_text_file_with_a_byte_order_mark_reads_without_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BOM + b"## First\nalpha")
    text, documents = load_corpus_path(path)
    assert text == "## First\nalpha" and documents is None


def test_a_jsonl_with_a_byte_order_mark_reads_every_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": "1", "title": "One", "content": "a"}), json.dumps({"title": "Two", "content": "b"})]
    path.write_bytes(BOM + "\n".join(lines).encode())
    text, documents = load_corpus_path(path)
    assert [d.title for d in documents or []] == ["One", "Two"]
    assert text.startswith("## One\n")


def test_a_folder_file_with_a_byte_order_mark_reads_without_it(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_bytes(BOM + b"alpha")
    text, _ = load_corpus_path(tmp_path)
    assert text == "## a.md\nalpha"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["pipe.txt", "pipe.jsonl", "pipe"])
def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(CorpusError, match="not a regular file"):
        load_corpus_path(fifo)


@pytest.mark.timeout(30)
def test_a_symlink_to_a_fifo_and_a_device_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.txt").symlink_to(tmp_path / "pipe")
    with pytest.raises(CorpusError, match="not a regular file"):
        load_corpus_path(tmp_path / "link.txt")
    with pytest.raises(CorpusError, match="not a regular file"):
        load_corpus_path(Path("/dev/zero"))


@pytest.mark.timeout(30)
def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(CorpusError, match="cannot be read|not a regular file"):
            load_corpus_path(path)


@pytest.mark.timeout(30)
def test_a_folder_skips_a_fifo_among_its_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "real.txt").write_text("content", encoding="utf-8")
    text, documents = load_corpus_path(tmp_path)
    assert text == "## real.txt\ncontent" and [d.id for d in documents or []] == ["real.txt"]


def test_a_section_reads_back_by_title(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    corpus_id = save_corpus(store, "## Harbor\ngauge 4.2\n\n## Ridge\ngauge 9.9\nwindy\n")
    assert section_text(store, corpus_id, "Harbor") == "gauge 4.2"
    assert section_text(store, corpus_id, "Ridge") == "gauge 9.9\nwindy"
    assert section_text(store, corpus_id, "Valley") is None


def test_a_document_holding_a_header_line_reads_back_whole(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    documents = [
        Document(id="d1", title="Log", content="## not a document\nline two"),
        Document(id="d2", title="Next", content="after"),
    ]
    corpus_id = save_corpus(store, render_documents(documents), documents)
    assert section_text(store, corpus_id, "Log") == "## not a document\nline two"
    assert section_text(store, corpus_id, "Next") == "after"
    assert section_text(store, corpus_id, "not a document") is None


def test_a_section_of_an_unknown_corpus_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no stored corpus"):
        section_text(FileStore(tmp_path), "0" * 64, "Any")
