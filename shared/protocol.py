"""Reading model replies and shaping what the model sees of cell output (DESIGN section 3)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CODE_BLOCK = re.compile(r"```[ \t]*(repl|python|py)[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
FINAL_CALL = re.compile(r"\bFINAL\((?P<body>.*)\)\s*$", re.DOTALL)
FINAL_VAR_CALL = re.compile(r"\bFINAL_VAR\(\s*['\"]?(?P<name>[A-Za-z_][A-Za-z0-9_]*)['\"]?\s*\)")


@dataclass(frozen=True)
class ParsedReply:
    """What a model reply asks for: code to run, and/or a final answer written in prose."""

    code: str | None
    final_text: str | None = None
    blocks: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self.code is None and self.final_text is None


def parse_reply(text: str | None) -> ParsedReply:
    """Blocks run in order in one REPL, so they are joined into one cell.

    Outside code, `FINAL_VAR(name)` becomes a cell that reads the variable in the REPL,
    and `FINAL(text)` ends the query when the reply has no code to run (with code, the
    code must set the answer itself, since it may change what the answer is).
    """
    text = text or ""
    blocks = [body.strip("\n") for _, body in CODE_BLOCK.findall(text)]
    blocks = [b for b in blocks if b.strip()]
    prose = FENCED.sub("", text).strip()
    if var := FINAL_VAR_CALL.search(prose):
        blocks.append(f"FINAL_VAR({var.group('name')!r})")
    if blocks:
        return ParsedReply(code="\n\n".join(blocks), blocks=blocks)
    return ParsedReply(code=None, final_text=_last_final_call(prose))


def _last_final_call(prose: str) -> str | None:
    for line_start in (m.start() for m in re.finditer(r"(?m)^.*FINAL\(", prose)):
        if match := FINAL_CALL.search(prose[line_start:]):
            return _unquote(match.group("body").strip())
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
