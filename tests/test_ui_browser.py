"""The web UI end to end, as a person uses it: headless Chromium on the pages a live
`devhost serve` serves, the real orchestrator, sandbox and Copilot CLI behind them, and the
scripted model. Each test keeps a screenshot in test-artifacts/ui/.

Tests marked `needs_route(...)` exercise routes other parts of the app add (compare, the
corpus section text); they run as soon as the function app registers those routes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from shared.prompts import ROOT_SYSTEM_PROMPT
from tests.support.live_app import LiveApp, chromium, live_app, screenshot
from tests.support.model_server import ModelServer, ScriptedRequest
from tests.support.rlm import filler_corpus, question_of, repl

pytestmark = pytest.mark.timeout(600)
UI = "/api/ui/"
# Generous: several engineers' test suites share two cores.
SLOW_MS = 180_000
NEEDLE = "ZEBRA-4471"
NEEDLE_CODE = (
    "import re\n"
    'sections = context.split("\\n\\n## ")\n'
    'hit = next(s for s in sections if "secret code is" in s)\n'
    'title = hit.lstrip("# ").splitlines()[0]\n'
    'print("found it in", title)\n'
    "used_sections = [title]\n"
    'Final = re.search(r"secret code is (\\S+)\\.", hit).group(1)'
)
SHELVES = "\n\n".join(f"## Shelf {i}\n" + " ".join(["apple"] * (i + 1) + ["pear"] * 5) for i in range(8))
FAN_OUT_CODE = (
    'parts = context.split("\\n\\n## ")\n'
    'answers = rlm_query_batch([("Count apples here", p) for p in parts])\n'
    "used_sections = [p.lstrip('# ').splitlines()[0] for p in parts]\n"
    "Final = str(sum(int(a) for a in answers))"
)


def registered_routes() -> set[str]:
    from devhost.functions import discover
    from function_app import app

    return {f.route for f in discover(app).http}


def needs_route(route: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(route not in registered_routes(), reason=f"the function app has no `{route}` route yet")


def is_rlm_turn(request: ScriptedRequest) -> bool:
    """A turn of an RLM query: its system message starts with the RLM system prompt."""
    return request.system.startswith(ROOT_SYSTEM_PROMPT)


def baselines_and_judge(request: ScriptedRequest) -> str:
    """RLM code finds the ridge; a retrieval baseline's answer call says so too; the judge
    gives 4 on every rubric and prefers the first answer."""
    from shared.grading import JUDGE_SYSTEM_PROMPT

    if is_rlm_turn(request):
        return repl("used_sections = ['Ridge']\nFinal = 'Ridge'")
    if request.system.strip() == JUDGE_SYSTEM_PROMPT.strip():
        return "Winner: A" if "Answer A:" in request.prompt else "Fair.\nScore: 4"
    return "Ridge"


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with ModelServer("no script set") as server:
        yield server


@pytest.fixture(scope="module")
def app(model: ModelServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("serve"), model.url) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("profile")) as context:
        yield context


@pytest.fixture
def page(browser: Any, app: LiveApp) -> Iterator[Any]:
    """A fresh tab given the function key as a user would (`?code=`, kept for the tab); a
    request to anywhere but the app fails the test (the UI works offline)."""
    tab = browser.new_page()
    elsewhere: list[str] = []
    tab.on("request", lambda r: None if r.url.startswith((app.url, "data:")) else elsewhere.append(r.url))
    failures: list[str] = []
    tab.on("pageerror", lambda e: failures.append(str(e)))
    tab.goto(f"{app.url}{UI}?code={app.key}")
    expect(tab).to_have_url(app.url + UI)
    yield tab
    tab.close()
    assert not elsewhere, f"the UI reached outside the app: {elsewhere}"
    assert not failures, f"uncaught errors in the page: {failures}"


def wait_for(condition: Callable[[], bool], what: str, seconds: float = SLOW_MS / 1000) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def bars(page: Any, selector: str) -> list[dict[str, Any]]:
    """Timeline marks with their accessible label and where they are drawn."""
    return page.eval_on_selector_all(
        f".timeline svg {selector} [aria-label]",
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {label: e.getAttribute('aria-label'), left: r.left, right: r.right, top: r.top}; })",
    )


def ask_with_text(page: Any, app: LiveApp, corpus: str, question: str) -> str:
    page.goto(app.url + UI)
    page.get_by_label("Paste text").check()
    page.get_by_label("Corpus text").fill(corpus)
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?q="), timeout=SLOW_MS)
    return page.url.split("?q=")[1]


def test_ask_a_needle_question_and_see_the_answer_and_its_source(
    app: LiveApp, page: Any, model: ModelServer, tmp_path: Path
) -> None:
    corpus = filler_corpus(400_000, needle=NEEDLE)
    section = next(s for s in corpus.split("\n\n## ") if NEEDLE in s).lstrip("# ").splitlines()[0]
    upload = tmp_path / "field-notes.txt"
    upload.write_text(corpus, encoding="utf-8")
    model.set_script(repl(NEEDLE_CODE))

    page.goto(app.url + UI)
    page.get_by_label("Upload files").check()
    page.get_by_label("Files to upload").set_input_files(upload)
    expect(page.get_by_text("Stored:")).to_contain_text("sections", timeout=SLOW_MS)
    page.get_by_label("Question").fill("What is the secret code?")
    page.get_by_role("button", name="Ask", exact=True).click()

    answer = page.locator("section.answer")
    expect(answer).to_contain_text(NEEDLE, timeout=SLOW_MS)
    expect(answer.get_by_role("button", name=section)).to_be_visible()
    expect(page.locator(".run-status")).to_contain_text("Completed")
    step = page.locator("article.step-model").first
    expect(step.locator("pre.code .hljs-keyword").first).to_be_visible()
    expect(page.locator("article.step-sandbox").first).to_contain_text(f"found it in {section}")
    screenshot(page, "ask-needle")


@needs_route("corpora/{corpus_id}/sections")
def test_a_stored_corpus_is_picked_and_a_source_opens_its_section_text(app: LiveApp, page: Any, model: ModelServer) -> None:
    corpus = filler_corpus(30_000, needle=NEEDLE, seed=11)
    section = next(s for s in corpus.split("\n\n## ") if NEEDLE in s).lstrip("# ").splitlines()[0]
    with app.client() as client:
        stored = client.post("/api/corpora", json={"text": corpus}).json()
    model.set_script(repl(NEEDLE_CODE))

    page.goto(app.url + UI)
    page.get_by_label("Stored corpus", exact=True).check()
    page.get_by_role("combobox", name="Corpus to query").select_option(stored["corpus_id"])
    page.get_by_label("Question").fill("Where is the secret code?")
    page.get_by_role("button", name="Ask", exact=True).click()
    page.locator("section.answer").get_by_role("button", name=section).click(timeout=SLOW_MS)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"The secret code is {NEEDLE}.")
    expect(dialog.locator("mark")).to_have_text(NEEDLE)  # the answer, marked where the section says it
    screenshot(page, "ask-source-section")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_an_eight_way_fan_out_shows_eight_parallel_bars(app: LiveApp, page: Any, model: ModelServer) -> None:
    release = threading.Event()

    def script(request: ScriptedRequest) -> str:
        if question_of(request).startswith("How many apples"):
            return repl(FAN_OUT_CODE)
        release.wait(SLOW_MS / 1000)  # the eight sub-queries are held until the test saw them run
        return repl('Final = str(context.count("apple"))')

    model.set_script(script)
    earlier = len(model.calls)
    try:
        ask_with_text(page, app, SHELVES, "How many apples are there?")
        children = [f"#{k}: Count apples here" for k in range(1, 9)]

        def running_children() -> int:
            labels = [b["label"] for b in bars(page, "g.timeline-span.running")]
            return sum(any(label.startswith(c) for label in labels) for c in children)

        wait_for(lambda: running_children() == 8, "eight running sub-queries on the timeline")
        wait_for(lambda: sum(1 for c in model.calls[earlier:] if c.answered is None) == 8, "eight model calls in flight")
        expect(page.locator(".run-status")).to_contain_text("Running")
        cost_meter = page.locator(".meters div", has_text="Cost").locator("dd")
        expect(cost_meter).to_have_text(re.compile(r"^\$[0-9.]+$"))
        cost_while_running = float(cost_meter.inner_text().lstrip("$"))
        screenshot(page, "fan-out-running")
        release.set()

        expect(page.locator("section.answer")).to_contain_text(str(sum(range(1, 9))), timeout=SLOW_MS)
    finally:
        release.set()
    # Tokens and cost add up as the tree runs: the eight sub-queries' calls came after.
    assert float(cost_meter.inner_text().lstrip("$")) > cost_while_running

    spans = [b for b in bars(page, "g.timeline-span") if b["label"].startswith(tuple(children))]
    assert len(spans) == 8
    assert len({round(s["top"]) for s in spans}) == 8, "each sub-query has its own row"
    assert max(s["left"] for s in spans) < min(s["right"] for s in spans), "the eight ran at the same time"
    # The fan-out comes before the resume step that consumed its answers.
    order = page.eval_on_selector_all(
        "details.node.depth-0 > .node-body > :is(article.step, section.fanout)",
        "els => els.map(e => e.matches('section.fanout') ? 'fan-out' : e.querySelector('.step-kind').textContent)",
    )
    assert order == ["Model call", "Sandbox run", "fan-out", "Sandbox resume"]
    badges = page.locator("section.fanout .badge").all_inner_texts()
    assert badges == [f"#{k}" for k in range(1, 9)]
    screenshot(page, "fan-out-done")


def test_cancel_a_running_query(app: LiveApp, page: Any, model: ModelServer) -> None:
    release = threading.Event()

    def script(request: ScriptedRequest) -> str:
        if question_of(request) == "Compare the halves":
            return repl("Final = ' '.join(rlm_query_batch(['slow a', 'slow b']))")
        release.wait(SLOW_MS / 1000)
        return repl("print('still going')")

    model.set_script(script)
    try:
        ask_with_text(page, app, "## a\nfirst half\n\n## b\nsecond half", "Compare the halves")
        expect(page.locator("details.node.depth-1")).to_have_count(2, timeout=SLOW_MS)
        page.get_by_role("button", name="Cancel query").click()
        status = page.locator(".run-status")
        expect(status).to_contain_text("Cancelled", timeout=SLOW_MS)
        expect(page.get_by_role("button", name="Cancel query")).to_have_count(0)
        expect(page.locator("details.node.depth-1 .state")).to_have_text(["stopped", "stopped"])
        screenshot(page, "cancelled")
    finally:
        release.set()
    query_id = page.url.split("?q=")[1]
    with app.client() as client:
        statuses = [client.get(f"/api/queries/{query_id}-1-{k}").json()["status"] for k in (0, 1)]
    assert statuses == ["Terminated", "Terminated"]


def test_a_past_query_opens_in_the_trace_view(app: LiveApp, page: Any, model: ModelServer) -> None:
    two_blocks = (
        "Look first.\n```repl\nprint(len(context))\n```\nThen answer.\n```repl\nused_sections = ['Ridge']\nFinal = 'Ridge'\n```"
    )
    model.set_script(two_blocks)
    with app.client() as client:
        started = client.post(
            "/api/queries", json={"question": "Which ridge?", "corpus": "## Ridge\nhigh\n\n## Harbor\nlow"}
        ).json()
        wait_for(lambda: client.get(f"/api/queries/{started['id']}").json()["status"] == "Completed", "the query to finish")

    page.goto(f"{app.url}/api/queries/{started['id']}/trace?format=html&code={app.key}")
    expect(page).to_have_url(f"{app.url}/api/ui/trace/{started['id']}")
    expect(page.get_by_role("heading", name="Trace", exact=True)).to_be_visible()
    expect(page.locator("section.answer")).to_contain_text("Ridge", timeout=SLOW_MS)
    # A timeline bar is a link to its step: following it by keyboard reveals that step.
    sandbox_bar = page.locator(".timeline svg g.timeline-bar a").nth(1)
    sandbox_bar.focus()
    page.keyboard.press("Enter")
    expect(page.locator("article.step-sandbox").first).to_be_focused()
    sandbox = page.locator("article.step-sandbox").first
    expect(sandbox).to_contain_text("done")
    # Each fenced block of the reply ran on its own: code and output are shown block by block.
    expect(page.locator("article.step-model").first.locator(".block-label")).to_have_text(["Block 1", "Block 2"])
    expect(sandbox.locator(".block-output").first).to_contain_text("28")
    screenshot(page, "trace-view")

    page.goto(app.url + UI + "trace")
    page.get_by_role("table", name="Recent queries").get_by_role("link", name="Which ridge?").click()
    expect(page).to_have_url(f"{app.url}/api/ui/trace/{started['id']}")
    expect(page.locator("section.answer")).to_contain_text("Ridge", timeout=SLOW_MS)


def submit_batch(app: LiveApp, batch_id: str, strategies: list[str] | None = None) -> None:
    questions = [
        {"id": "q1", "question": "Which station is highest?", "expected": "Ridge"},
        {"id": "q2", "question": "Which station is lowest?", "expected": "Harbor"},
        {"id": "q3", "question": "Which station is wettest?", "expected": "Valley"},
    ]
    body = {"batch_id": batch_id, "corpus": "## Ridge\n2100 m\n\n## Harbor\n3 m\n\n## Valley\n400 m", "questions": questions}
    if strategies:
        body["strategies"] = strategies
    with app.client() as client:
        response = client.post("/api/batches", json=body)
        assert response.status_code == 202, response.text
        wait_for(lambda: client.get(f"/api/batches/{batch_id}").json()["status"] == "Completed", "the batch to finish")


def test_a_benchmark_opens_as_charts_and_drills_down_to_a_trace(app: LiveApp, page: Any, model: ModelServer) -> None:
    def script(request: ScriptedRequest) -> str:
        answer = "Ridge" if "highest" in question_of(request) else "Harbor"  # wrong about the wettest
        return repl(f"used_sections = [{answer!r}]\nFinal = {answer!r}")

    model.set_script(script)
    submit_batch(app, "ui-bench-1")

    page.goto(app.url + UI + "benchmarks")
    page.get_by_role("table", name="Batches").get_by_role("link", name="ui-bench-1").click()
    accuracy = page.locator("figure.chart-accuracy svg")
    expect(accuracy).to_be_visible(timeout=SLOW_MS)
    expect(accuracy.locator("title", has_text="rlm accuracy: 0.67")).to_have_count(1)
    expect(page.locator("figure.chart-latency svg")).to_be_visible()
    # Cost per question as a box plot: one dot per question, each saying what it cost.
    cost = page.locator("figure.chart-cost")
    expect(cost.locator("h3")).to_have_text("Cost per question")
    expect(cost.locator("svg title", has_text=re.compile(r"^rlm · Which station is \w+\?: \$0\.\d+$"))).to_have_count(3)
    expect(page.locator("figure.chart-tradeoff svg")).to_be_visible()
    expect(page.locator("table.rows tbody tr")).to_have_count(3)
    screenshot(page, "benchmark")

    page.locator("table.rows").get_by_role("link", name="Which station is wettest?").click()
    expect(page).to_have_url(re.compile(r"/api/ui/trace/batch-ui-bench-1-3$"))
    expect(page.locator("section.answer")).to_contain_text("Harbor", timeout=SLOW_MS)


GAUGES = "## Ridge\nThe ridge gauge reads 9.9 m.\n\n## Harbor\nThe harbor gauge reads 4.2 m."


def compare_through_api(app: LiveApp, question: str, strategies: list[str], expected: str) -> tuple[str, str]:
    """A finished comparison over a stored corpus: (compare id, corpus id)."""
    with app.client() as client:
        corpus_id = client.post("/api/corpora", json={"text": GAUGES}).json()["corpus_id"]
        body = {"question": question, "corpus_id": corpus_id, "strategies": strategies, "expected": expected}
        started = client.post("/api/compare", json=body)
        assert started.status_code == 202, started.text
        compare_id = started.json()["compare_id"]
        wait_for(lambda: client.get(f"/api/compare/{compare_id}").json()["status"] == "Completed", "the comparison to finish")
    return compare_id, corpus_id


@needs_route("compare")
def test_compare_two_strategies_side_by_side(app: LiveApp, page: Any, model: ModelServer) -> None:
    model.set_script(baselines_and_judge)
    page.goto(app.url + UI + "compare")
    page.get_by_label("Paste text").check()
    page.get_by_label("Corpus text").fill(GAUGES)
    page.get_by_label("Question").fill("Which gauge reads highest?")
    for strategy in ("vector", "hybrid", "agentic"):
        page.get_by_role("checkbox", name=re.compile(f"^{strategy}")).uncheck()

    page.get_by_label("Expected answer (optional)").fill("Ridge")
    page.get_by_role("button", name="Compare", exact=True).click()

    table = page.locator("table.compare-table")
    expect(table).to_be_visible(timeout=SLOW_MS)
    expect(table.locator("thead th")).to_have_text(["Measure", "rlm", "keyword"])
    expect(table.get_by_role("row", name=re.compile("^Exact match"))).to_have_text(re.compile("Exact match\\s*yes\\s*yes"))
    expect(table.get_by_role("row", name=re.compile("^Relevance"))).to_have_text(re.compile("4\\.0\\s*4\\.0"))
    # Each strategy's own latency, tokens (both made model calls) and cost, priced by the app's table.
    took = r"\d[\d.]* m?s"
    expect(table.get_by_role("row", name=re.compile("^Latency"))).to_have_text(re.compile(f"^Latency\\s*{took}\\s*{took}$"))
    tokens = r"[1-9][\d,]* → [1-9][\d,]*"
    expect(table.get_by_role("row", name=re.compile("^Tokens"))).to_have_text(
        re.compile(f"^Tokens in → out\\s*{tokens}\\s*{tokens}$")
    )
    expect(table.get_by_role("row", name=re.compile("^Cost"))).to_have_text(re.compile(r"^Cost\s*\$[0-9.]+\s*\$[0-9.]+$"))
    # The whole comparison's cost, the judge's and the index build's, as the result gives them.
    costs = page.get_by_label("What the comparison cost")
    with app.client() as client:
        result = client.get(f"/api/compare/{page.url.split('id=')[1].split('&')[0]}").json()["result"]
    total = float(costs.locator("div", has_text="Total cost").locator("dd").inner_text().lstrip("$"))
    assert result["cost"] > 0 and abs(total - result["cost"]) <= max(5e-5, result["cost"] / 100)
    expect(costs.locator("div", has_text="Judge").locator("dd")).to_have_text(
        re.compile(r"^\$[0-9.]+\s+\d+ model calls?, [\d,]+ tokens$"), use_inner_text=True
    )
    expect(costs.locator("div", has_text="Index building").locator("dd")).to_have_text(
        re.compile(r"^\$0\s+\d+ passages; (built|reused): keyword$"), use_inner_text=True
    )
    for strategy in ("rlm", "keyword"):
        card = page.get_by_role("article", name=strategy)
        expect(card).to_contain_text("Ridge")
        expect(card.get_by_role("button", name="Ridge")).to_be_visible()
    expect(page.locator("ul.preference")).to_contain_text("rlm or keyword")
    screenshot(page, "compare")
    page.get_by_role("article", name="keyword").get_by_role("link", name="Open the trace of keyword").click()
    expect(page.locator("section.answer")).to_contain_text("Ridge", timeout=SLOW_MS)
    expect(page.locator("article.step-retrieval ol.hits").first).to_contain_text("Ridge")  # what the search found
    screenshot(page, "compare-keyword-trace")


@needs_route("compare/{compare_id}/cancel")
def test_cancel_a_running_comparison(app: LiveApp, page: Any, model: ModelServer) -> None:
    release = threading.Event()

    def script(request: ScriptedRequest) -> str:
        if is_rlm_turn(request):
            release.wait(SLOW_MS / 1000)  # RLM is still exploring when the person cancels
            return repl("print('still going')")
        return baselines_and_judge(request)

    model.set_script(script)
    try:
        page.goto(app.url + UI + "compare")
        page.get_by_label("Paste text").check()
        page.get_by_label("Corpus text").fill(GAUGES)
        page.get_by_label("Question").fill("Which gauge reads lowest?")
        for strategy in ("vector", "hybrid", "agentic"):
            page.get_by_role("checkbox", name=re.compile(f"^{strategy}")).uncheck()
        page.get_by_role("button", name="Compare", exact=True).click()
        status = page.locator(".run-status")
        expect(status).to_contain_text("rlm running", timeout=SLOW_MS)
        expect(status).to_contain_text("keyword done", timeout=SLOW_MS)
        page.get_by_role("button", name="Cancel comparison").click()
        expect(status).to_contain_text("Cancelled", timeout=SLOW_MS)
        expect(status).to_contain_text("stopped rlm.")
        expect(page.get_by_role("button", name="Cancel comparison")).to_have_count(0)
        expect(page.locator(".notice.bad")).to_contain_text("cancelled before it finished")
        screenshot(page, "compare-cancelled")
    finally:
        release.set()
    compare_id = page.url.split("id=")[1].split("&")[0]
    with app.client() as client:
        assert client.get(f"/api/compare/{compare_id}").json()["status"] == "Terminated"
        wait_for(lambda: client.get(f"/api/queries/{compare_id}-rlm").json()["status"] == "Terminated", "RLM to be stopped")


@needs_route("compare")
def test_a_multi_strategy_benchmark_charts_each_strategy(app: LiveApp, page: Any, model: ModelServer) -> None:
    model.set_script(baselines_and_judge)
    body = {
        "batch_id": "ui-bench-strategies",
        "corpus": "## Ridge\n2100 m\n\n## Harbor\n3 m",
        "questions": [{"question": "Which station is highest?", "expected": "Ridge"}],
        "strategies": ["rlm", "keyword"],
    }
    with app.client() as client:
        response = client.post("/api/batches", json=body)
        assert response.status_code == 202, response.text
        wait_for(lambda: client.get("/api/batches/ui-bench-strategies").json()["status"] == "Completed", "the batch to finish")
    page.goto(app.url + UI + "benchmarks/ui-bench-strategies")
    accuracy = page.locator("figure.chart-accuracy svg")
    expect(accuracy).to_be_visible(timeout=SLOW_MS)
    for strategy in ("rlm", "keyword"):
        expect(accuracy.locator("title", has_text=f"{strategy} accuracy: 1.00")).to_have_count(1)
        expect(page.locator("figure.chart-judge svg title", has_text=f"{strategy} relevance: 4.00")).to_have_count(1)
    expect(page.locator("figure.chart-tradeoff svg")).to_be_visible()
    expect(page.locator("table.rows tbody tr")).to_have_count(2)
    screenshot(page, "benchmark-strategies")


def test_the_function_key_is_asked_for_once_and_sent(app: LiveApp, browser: Any) -> None:
    """The pages need no key; the API answers 401 without one, as in Azure."""
    tab = browser.new_page()
    sent: list[str | None] = []
    tab.on("request", lambda r: sent.append(r.headers.get("x-functions-key")) if "/api/queries" in r.url else None)
    tab.goto(app.url + UI + "trace")
    dialog = tab.get_by_role("dialog", name="Function key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Key").fill("not-the-key")
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog).to_contain_text("refused")
    dialog.get_by_label("Key").fill(app.key)
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(tab.get_by_text(re.compile("Recent queries|No queries yet"))).to_be_visible()
    assert sent[0] is None and sent[-1] == app.key
    assert tab.evaluate("sessionStorage.getItem('rlm.functionKey')") == app.key
    tab.close()

    # A link with the key in it (as `az functionapp keys list` users share them) needs no dialog.
    linked = browser.new_page()
    linked.goto(f"{app.url}{UI}benchmarks?code={app.key}")
    expect(linked.get_by_role("heading", name="Benchmarks")).to_be_visible()
    expect(linked.get_by_text(re.compile("Batches|No batches yet"))).to_be_visible()
    assert "code=" not in linked.url
    expect(linked.get_by_role("dialog", name="Function key")).to_be_hidden()
    linked.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    from tests.support.live_app import ROOT

    # Evaluated through the driver: the app's Content-Security-Policy rightly refuses inline scripts.
    page.evaluate((ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js").read_text(encoding="utf-8"))
    result = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})")
    checked = {p["id"] for p in result["passes"]}
    assert {"color-contrast", "label"} & checked, f"axe checked too little: {sorted(checked)}"
    # axe only "needs review" a name on a role-less element that holds text (Plot's axis labels, titled marks).
    unsure = [v for v in result["incomplete"] if v["id"] == "aria-prohibited-attr"]
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"] + unsure
    ]


def assert_accessible_and_fits(page: Any, view: str, width: int) -> None:
    assert axe_violations(page) == [], view
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{view} is {overflow} px wider than a {width} px screen"


@pytest.mark.parametrize("width", [1280, 390])
def test_views_pass_wcag_aa_checks_and_fit_the_screen(app: LiveApp, page: Any, model: ModelServer, width: int) -> None:
    model.set_script(repl(NEEDLE_CODE))
    submit_batch(app, f"ui-a11y-{width}")  # so the listings have rows to lay out
    page.set_viewport_size({"width": width, "height": 900})
    query_id = ask_with_text(page, app, filler_corpus(20_000, needle=NEEDLE), "Where is the secret code?")
    expect(page.locator("section.answer")).to_contain_text(NEEDLE, timeout=SLOW_MS)
    page.locator("details.node.depth-0 details.more").first.evaluate("d => d.open = true")
    for view in ("", "compare", "benchmarks", f"trace/{query_id}"):
        if view:
            page.goto(app.url + UI + view)
            expect(page.locator("main h1")).to_be_visible()
        if view.startswith("trace/"):
            expect(page.locator("section.answer")).to_be_visible(timeout=SLOW_MS)
        assert_accessible_and_fits(page, view or "ask", width)
    screenshot(page, f"trace-{width}px")


@needs_route("compare")
@pytest.mark.parametrize("width", [1280, 390])
def test_chart_pages_pass_wcag_aa_checks_and_fit_the_screen(app: LiveApp, page: Any, model: ModelServer, width: int) -> None:
    """The pages drawn with Observable Plot: a comparison's result and a benchmark's charts."""
    model.set_script(baselines_and_judge)
    batch_id = f"ui-a11y-charts-{width}"
    submit_batch(app, batch_id, ["rlm", "keyword"])
    compare_id, corpus_id = compare_through_api(app, "Which gauge reads highest?", ["rlm", "keyword"], expected="Ridge")
    page.set_viewport_size({"width": width, "height": 900})
    for view, chart in (
        (f"compare?id={compare_id}&corpus={corpus_id}", "figure.chart svg"),
        (f"benchmarks/{batch_id}", "figure.chart-cost svg"),
    ):
        page.goto(app.url + UI + view)
        expect(page.locator(chart)).to_be_visible(timeout=SLOW_MS)
        assert_accessible_and_fits(page, view, width)
        for caption in page.locator("figure.chart figcaption").all_inner_texts():  # each chart keeps its name
            expect(page.get_by_role("figure", name=caption, exact=True)).to_be_visible()
        screenshot(page, f"{view.split('?')[0].replace('/', '-')}-{width}px")


def test_keyboard_reaches_every_view_with_a_visible_focus(app: LiveApp, page: Any) -> None:
    page.goto(app.url + UI)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.goto(app.url + UI)
    for view in ("Ask", "Compare", "Benchmarks", "Trace"):
        link = page.get_by_role("navigation").get_by_role("link", name=view)
        while not link.evaluate("l => l === document.activeElement"):
            page.keyboard.press("Tab")
        outline = link.evaluate("l => getComputedStyle(l).outlineStyle + ' ' + getComputedStyle(l).outlineWidth")
        assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    page.keyboard.press("Enter")
    expect(page).to_have_url(app.url + UI + "trace")
    expect(page.get_by_role("navigation").get_by_role("link", name="Trace")).to_have_attribute("aria-current", "page")
