"""What the model is told: the RLM system prompt, the leaf prompt, and each call's request."""

from __future__ import annotations

from dataclasses import dataclass

from shared.models import ForcedReason

ROOT_SYSTEM_PROMPT = """\
You answer a question about a corpus that is far too large to read. You cannot see it.
You have a persistent Python REPL in which the corpus is the string variable `context`.
Each reply of yours may contain one or more code blocks fenced as ```repl ... ```. They
run in order in the same REPL, each on its own: an error in one block is shown for that
block and the next block still runs. You then see what each block printed, under its
own header (long output is cut, so print summaries and slices, never the whole corpus).
Only ```repl blocks run. Do not write their output yourself: the real output follows.

In the REPL:
- `context` (also `context_0`): the corpus. Documents are sections that start with a
  line `## <title>`.
- `rlm_query(question, sub_context=None, model=None) -> str`: asks a helper that has its
  own REPL with `sub_context` as its `context` (your `context` if None). Use it for a part
  of the corpus that needs reading and reasoning, not for things code can do.
- `rlm_query_batched(pairs, model=None) -> list[str]`: many `(question, sub_context)`
  pairs at once, in parallel. Prefer it to a loop of `rlm_query` calls.
- `llm_query(prompt, model=None) -> str` and `llm_query_batched(prompts, model=None) ->
  list[str]`: one plain model call each (no REPL), the batch in parallel; the prompt must
  carry any text the model needs.
- `model=` picks another model for that call, if the service allows it.
- `SHOW_VARS()`: the variables you have created, with their type and size.
- `used_sections`: a list; put the titles of the sections your answer relies on in it.
- Finishing: in a ```repl block, call `FINAL(answer)` when you are done (or set
  `Final = answer`, or call `FINAL_VAR(variable_name)`, or set `answer["content"]` and
  then `answer["ready"] = True`). That ends the work. A FINAL(...) written in prose
  beside code does not end it: you wrote it before you saw what the code printed.

How to work:
1. Look before you search: size, section count, a few titles, the shape of a section.
2. Narrow with code: split on headers, filter with keywords or regular expressions,
   count, sort. Print what you found, briefly.
3. When the relevant text is too long or needs judgement, hand pieces to
   `rlm_query_batched` (chunks of a few hundred thousand characters at most each) and
   combine the answers with code or one more query.
4. Answer only from what the REPL showed you. Record `used_sections`, then call FINAL.

Examples of good code:
```repl
sections = context.split("\\n## ")
print(len(context), "chars,", len(sections), "sections")
print([s.splitlines()[0][:80] for s in sections[:10]])
```
```repl
import re
hits = [s for s in sections if re.search(r"vaccin", s, re.I)]
print(len(hits), [h.splitlines()[0] for h in hits[:20]])
```
```repl
chunks = ["\\n## ".join(hits[i:i + 20]) for i in range(0, len(hits), 20)]
answers = rlm_query_batched([("List every vaccine trial mentioned, with its outcome.", c) for c in chunks])
for a in answers:
    print(a[:500])
```
```repl
used_sections = [h.splitlines()[0].lstrip("# ").strip() for h in hits]
FINAL("Three trials were reported: ...")
```

Reply with a short thought and code. Do not answer from memory; the corpus decides."""

LEAF_SYSTEM_PROMPT = """\
You answer one question directly and concisely. Any text you need is in the message.
Reply with the answer only."""

FORCED_FINAL_INSTRUCTION = """\
Do not write code. From what the REPL showed you above, write the best answer you can
to the question, and say what remains uncertain."""

# Why no more code runs, said ahead of FORCED_FINAL_INSTRUCTION.
FORCED_REASONS: dict[ForcedReason, str] = {
    "iterations": "You have used every iteration.",
    "tokens": "The query's token budget is spent.",
    "cost": "The query's cost budget is spent.",
    "deadline": "The query's time is up.",
}

def not_run_note(pending: list[str], reason: ForcedReason | None) -> str:
    """What the model is told of a cell left waiting on requests once the budget ran out."""
    why = FORCED_REASONS[reason] if reason is not None else "The query's budget is spent."
    asked = ", ".join(f"{kind}_query" for kind in pending)
    return (
        f"[the cell was stopped while it waited on {len(pending)} more request(s) ({asked}), which were not run: "
        f"{why} No more code will run; answer now from what the REPL showed you.]"
    )


NO_CODE_NUDGE = """\
(Your last reply had no ```repl code block and did not set Final. Write code, or finish
with FINAL(answer).)"""

TRANSCRIPT_HEADER = """\
=== Your task ===
Your replies so far and what the REPL printed for each follow, oldest first. Each user
message asks for your next reply."""


@dataclass(frozen=True)
class Turn:
    """One past iteration as the model will see it again."""

    reply: str
    output: str | None


@dataclass(frozen=True)
class RootRequest:
    """One model call of the RLM loop.

    `system` is the system prompt followed by the question and every earlier turn, so the
    next call's system message begins with this one's, byte for byte: provider prompt caches
    then bill all of it as a repeated prefix. The Copilot CLI stamps the time at the head of
    every user message, so only `prompt`, the short instruction for this call, goes there.
    """

    system: str
    prompt: str

    @property
    def transcript(self) -> str:
        """What follows the fixed system prompt: the trace keeps this, not the constant."""
        return f"{self.system.removeprefix(ROOT_SYSTEM_PROMPT).lstrip()}\n\n{self.prompt}"


def render_root_request(
    *,
    question: str,
    context_chars: int,
    section_count: int,
    iteration: int,
    max_iterations: int,
    turns: list[Turn],
    forced: ForcedReason | None = None,
) -> RootRequest:
    """Every call rebuilds the request from the trace, so retries and restarts send exactly
    what the first attempt sent; each turn is rendered from its own record only, so the
    transcript grows by appending."""
    parts = [
        ROOT_SYSTEM_PROMPT,
        TRANSCRIPT_HEADER,
        f"Question: {question}\n`context` holds {context_chars} characters in {section_count} sections.",
    ]
    for number, turn in enumerate(turns, start=1):
        parts.append(f"--- Iteration {number}: your reply ---\n{turn.reply}")
        parts.append(f"--- Iteration {number}: REPL output ---\n{turn.output}" if turn.output is not None else NO_CODE_NUDGE)
    if forced is not None:
        prompt = f"{FORCED_REASONS[forced]} {FORCED_FINAL_INSTRUCTION}"
    else:
        prompt = f"This is iteration {iteration} of {max_iterations}. Your reply:"
    return RootRequest(system="\n\n".join(parts), prompt=prompt)


def render_leaf_message(question: str, sub_context: str | None, max_chars: int) -> str:
    """At max depth a sub-query is a single call; its text must fit in the prompt."""
    if not sub_context:
        return question
    text = sub_context
    note = ""
    if len(text) > max_chars:
        note = f"\n[text cut to its first {max_chars} of {len(sub_context)} characters]"
        text = text[:max_chars]
    return f"{question}\n\nText:\n{text}{note}"
