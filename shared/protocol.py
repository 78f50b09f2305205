"""Reading model replies and shaping what the model sees of cell output (DESIGN section 3).

Replies carry more than code, and each case has one rule here (the README's "What the
REPL understands" lists them): chat-template tokens are stripped and a reply that goes
on to write the next user turn is cut there; ```repl / ```python blocks run, each on
its own; a block indented as a whole is dedented; other fences (often output the model
invented) never run, and the model is told so; `FINAL(...)` in prose, or alone in a
block that is not Python, is a written answer, which ends the query only when the reply
has no code to run (it was written before the code's output was seen).
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

CODE_TAGS = frozenset({"repl", "python", "py", "python3", "ipython"})
# A fence opens with ``` and an optional tag at the start of a line; it closes at ``` ending
# a line, or at the end of the reply.
FENCE_OPEN = re.compile(r"^[ \t]*```[ \t]*(?P<tag>[A-Za-z0-9_+.#-]*)[^\n`]*\n", re.MULTILINE)
FENCE_CLOSE = re.compile(r"```[ \t]*$", re.MULTILINE)
# The model writing the next user/system/tool turn itself: what follows is invented.
TURN_HANDOFF = re.compile(
    r"<\|im_start\|>\s*(?:user|system|tool)\b"
    r"|<\|start_header_id\|>\s*(?:user|system|tool|ipython)\s*<\|end_header_id\|>"
    r"|<start_of_turn>\s*user\b"
    r"|<\|(?:user|system|tool)\|>",
    re.IGNORECASE,
)
TEMPLATE_TOKEN = re.compile(
    r"<\|im_start\|>\s*assistant\b"
    r"|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>"
    r"|<start_of_turn>\s*model\b"
    r"|<\|[A-Za-z_][A-Za-z0-9_]{0,40}\|>"  # <|im_end|>, <|endoftext|>, <|eot_id|>, <|assistant|>, ...
    r"|<\uff5c[^\uff5c<>]{1,40}\uff5c>"  # DeepSeek's full-width <｜end▁of▁sentence｜>
    r"|<end_of_turn>|<start_of_turn>",
    re.IGNORECASE,
)
FINAL_ON_LINE = re.compile(r"\bFINAL\((?P<body>.*)\)[ \t]*$")
FINAL_TO_END = re.compile(r"\bFINAL\((?P<body>.*)\)\s*$", re.DOTALL)
FINAL_ONLY = re.compile(r"^\s*FINAL\((?P<body>.*)\)\s*$", re.DOTALL)
FINAL_VAR_CALL = re.compile(r"""\bFINAL_VAR\(\s*(?P<arg>[A-Za-z_]\w*|"[^"\n]*"|'[^'\n]*')\s*\)""")

PROSE_FINAL_NOTE = (
    "[note] The FINAL(...) written beside your code did not end the query: it was written before the code ran. "
    "If the output confirms it, finish with FINAL(...)."
)
CUT_TURN_NOTE = "[note] Your reply went on to write the next turn itself; everything from there on was dropped."


@dataclass(frozen=True)
class ParsedReply:
    """What a model reply asks for: blocks to run in order, and/or a final answer written in prose."""

    blocks: list[str] = field(default_factory=list)
    final_text: str | None = None
    notes: list[str] = field(default_factory=list)  # shown to the model above the cell's output

    @property
    def code(self) -> str | None:
        return "\n\n".join(self.blocks) if self.blocks else None

    @property
    def is_empty(self) -> bool:
        return not self.blocks and self.final_text is None


def parse_reply(text: str | None) -> ParsedReply:
    """Blocks run in order in one REPL, each on its own (one cell per reply).

    Outside code, `FINAL_VAR(x)` becomes a block that resolves x in the REPL (after the
    code ran), and `FINAL(text)` ends the query when the reply has no code to run; with
    code, the code must set the answer itself, since its output may change the answer.
    """
    text, notes = _without_template_tokens(text or "")
    blocks: list[str] = []
    written_finals: list[str] = []
    prose: list[str] = []
    skipped: list[str] = []
    at = 0
    for start, end, tag, body in _fences(text):
        prose.append(text[at:start])
        at = end
        if tag.lower() not in CODE_TAGS:
            skipped.append(tag)
            continue
        block = runnable(body.rstrip().lstrip("\n"))
        if not block.strip():
            continue
        if (written := _written_final(block)) is not None:
            written_finals.append(written)
        else:
            blocks.append(block)
    prose_text = "".join([*prose, text[at:]])
    if var := FINAL_VAR_CALL.search(prose_text):
        blocks.append(f"FINAL_VAR({_unquote(var.group('arg'))!r})")
    if (prose_final := _last_final_call(prose_text)) is not None:
        written_finals.append(prose_final)
    final = written_finals[-1] if written_finals else None
    if blocks:
        if skipped:
            notes.append(_skipped_note(skipped))
        if final is not None:
            notes.append(PROSE_FINAL_NOTE)
        return ParsedReply(blocks=blocks, notes=notes)
    if final is not None and final.isidentifier():  # FINAL(name) unquoted: the variable, when there is one
        return ParsedReply(blocks=[f"FINAL_VAR({final!r})"], notes=notes)
    return ParsedReply(final_text=None if final is None else _unquote(final), notes=notes)


def runnable(block: str) -> str:
    """A block that fails to parse only because all its lines share an indentation, dedented."""
    if _parses(block):
        return block
    dedented = textwrap.dedent(block)
    return dedented if dedented != block and _parses(dedented) else block


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return False
    return True


def _without_template_tokens(text: str) -> tuple[str, list[str]]:
    notes = []
    handoff = TURN_HANDOFF.search(text)
    if handoff is not None and text[: handoff.start()].strip():
        text = text[: handoff.start()]
        notes.append(CUT_TURN_NOTE)
    return TEMPLATE_TOKEN.sub("", text), notes


def _fences(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, tag, body) of each fenced block; an unclosed fence runs to the end."""
    at = 0
    while opened := FENCE_OPEN.search(text, at):
        closed = FENCE_CLOSE.search(text, opened.end())
        body_end, at = (closed.start(), closed.end()) if closed else (len(text), len(text))
        yield opened.start(), at, opened.group("tag"), text[opened.end() : body_end]


def _written_final(block: str) -> str | None:
    """A block holding only `FINAL(...)` that is not Python is an answer written in prose."""
    match = FINAL_ONLY.match(block)
    if match is None or _parses(block):
        return None
    return match.group("body").strip()


def _skipped_note(tags: list[str]) -> str:
    names = ", ".join(dict.fromkeys(f"```{tag}" if tag else "``` (untagged)" for tag in tags))
    were = "block was" if len(tags) == 1 else "blocks were"
    return f"[note] Only ```repl blocks run; your {names} {were} not run. The real output of your code follows."


def _last_final_call(prose: str) -> str | None:
    """The body of the last `FINAL(...)`: closed on its own line, or spanning lines to the end of the prose."""
    for line in reversed(list(re.finditer(r"(?m)^.*\bFINAL\(.*$", prose))):
        if match := FINAL_ON_LINE.search(line.group()) or FINAL_TO_END.search(prose, line.start()):
            return match.group("body").strip()
    return None


def _unquote(value: str) -> str:
    for quote in ('"""', "'''", '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return value[len(quote) : -len(quote)]
    return value


def truncate_output(text: str, limit: int) -> str:
    """Keep the head and the tail, and say how much was cut so the model can narrow its print."""
    if len(text) <= limit:
        return text
    note_room = 80
    keep = max(limit - note_room, 0)
    head = keep * 2 // 3
    tail = keep - head
    cut = len(text) - head - tail
    tail_text = text[len(text) - tail :] if tail else ""
    return f"{text[:head]}\n[... {cut} of {len(text)} chars cut; print less or slice ...]\n{tail_text}"
