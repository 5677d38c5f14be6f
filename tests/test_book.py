"""Build the book from the notebooks' stored outputs and check every page in headless Chromium.

The build uses a copy of ``_config.yml`` whose only change is
``execute_notebooks: off`` (CI runs the notebooks once, under nbval; see
book/validation.md), with the same ``-W -n`` flags as ``make book``. The pages
are served from ``_build/html`` on 127.0.0.1 and opened in Debian's Chromium
through chromedriver; a screenshot of each page's first screen goes to ``_build/screenshots/``
(the whole page with ``BOOK_SCREENSHOTS=full``).
Chromium and chromedriver are installed by ``make test`` (target ``browser``);
without them this module is skipped, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from browser import CHROMEDRIVER, CHROMIUM, headless_chromium, local_server

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SCREENSHOTS = REPO / "_build" / "screenshots"
#: The in-browser playground page and its build-time assets (book/playground_assets.py).
PLAYGROUND_DOC = "book/playground"
PLAYGROUND = REPO / "_build" / "playground"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: Console messages of the theme stack itself, present on every page of any jupyter-book 1.0.4 book.
KNOWN_CONSOLE_NOISE = (
    "Identifier 'THEBE_JS_URL' has already been declared",  # sphinx-thebe's inline config is added twice (thebe is off)
    "Got invalid theme mode",  # pydata-sphinx-theme on a first visit (empty localStorage)
    "/favicon.ico",  # the browser asks for one; the book has none
)


def toc_docs() -> list[str]:
    """Every document of the book, in TOC order (root first), without extension."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    docs = [toc["root"]]
    for part in toc.get("parts", []):
        docs += [chapter["file"] for chapter in part.get("chapters", [])]
    return docs


def source_of(doc: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (REPO / f"{doc}{suffix}").is_file():
            return REPO / f"{doc}{suffix}"
    raise FileNotFoundError(f"_toc.yml lists {doc!r}, but there is no {doc}.ipynb or {doc}.md")


def expected_title(doc: str) -> str:
    """The first '# ' heading of the page's source."""
    path = source_of(doc)
    if path.suffix == ".ipynb":
        text = "\n".join(
            "".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"
        )
    else:
        text = path.read_text()
    match = re.search(r"^# (.+)$", text, flags=re.M)
    assert match, f"{path}: no '# title' heading"
    return match.group(1).strip()


#: A worked solution in a chapter's Markdown: a dropdown titled "Show solution" (folded on load).
MD_SOLUTION = re.compile(r"^:{3,}\{dropdown\} Show solution", flags=re.M)
#: The questions a jupyterquiz output embeds in its script: `var questions<id>=[...];`
QUIZ_JSON = re.compile(r"var questions\w+=(\[.*?\]);\s*\n\s*\nif \(typeof Question", flags=re.S)


def quiz_questions(doc: str) -> list[dict]:
    """The self-check questions stored in the notebook's quiz outputs, in page order."""
    path = source_of(doc)
    if path.suffix != ".ipynb":
        return []
    out = []
    for cell in json.loads(path.read_text())["cells"]:
        for o in cell.get("outputs", []):
            script = "".join(o.get("data", {}).get("application/javascript", ""))
            out += [q for m in QUIZ_JSON.finditer(script) for q in json.loads(m.group(1))]
    return out


def notebook_facts(doc: str) -> dict:
    """What the stored notebook says the page must show: figures, widgets, solutions."""
    path = source_of(doc)
    if path.suffix != ".ipynb":
        return {"figures": 0, "widget_views": 0, "solutions": 0}
    nb = json.loads(path.read_text())
    figures = widget_views = solutions = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            solutions += len(MD_SOLUTION.findall("".join(cell["source"])))
        if cell["cell_type"] != "code":
            continue
        if "hide-cell" in cell.get("metadata", {}).get("tags", []):
            solutions += 1
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                widget_views += 1
            elif any(m in data for m in IMAGE_MIMES):
                figures += 1
    return {"figures": figures, "widget_views": widget_views, "solutions": solutions}


def _tool_missing() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return (
        f"{', '.join(missing)} missing: run `make browser` (apt-get install chromium chromium-driver)"
        if missing
        else None
    )


@pytest.fixture(scope="module")
def built_book() -> Path:
    """Build _build/html from the stored outputs (execution off), warnings as errors."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (REPO / "_build").mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=REPO / "_build", delete=False) as f:
        yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
    try:
        jb = Path(sys.executable).with_name("jupyter-book")
        proc = subprocess.run(
            [str(jb), "build", str(REPO), "--config", f.name, "-W", "-n", "--keep-going"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        os.unlink(f.name)
    warnings = [
        line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line
    ]
    assert proc.returncode == 0, "book build failed:\n" + "\n".join(warnings or proc.stdout.splitlines()[-30:])
    for doc in toc_docs():
        assert (HTML / f"{doc}.html").is_file(), f"{doc}.html was not built"
    if (PLAYGROUND / ".complete").is_file():  # as `make book` does after its build
        subprocess.run(
            [sys.executable, str(REPO / "book" / "playground_assets.py"), "--install", str(PLAYGROUND), str(HTML)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return HTML


def _needs_playground_assets(doc: str) -> None:
    if doc == PLAYGROUND_DOC and not (PLAYGROUND / ".complete").is_file():
        pytest.skip("the playground's assets are not built: run `make playground`")


@pytest.fixture(scope="module")
def server(built_book):
    """Serve _build/html on 127.0.0.1 (a free port) for the module's tests."""
    with local_server(built_book) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    missing = _tool_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    driver, profile = headless_chromium("lpips-book-chromium-", window_size="1280,1600")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, url: str) -> None:
    driver.get(url)
    deadline = time.time() + 30
    while time.time() < deadline:  # figures below the fold load lazily in some themes: wait for all
        pending = driver.execute_script("return Array.from(document.images).filter(i => !i.complete).length")
        if pending == 0:
            return
        time.sleep(0.2)


#: Height of one screenshot tile: Chromium cannot capture a window much taller than
#: 16,384 px (its largest texture), so long pages are captured in tiles and stitched.
TILE = 4000

#: ``BOOK_SCREENSHOTS=full``: whole pages, stitched from tiles (about 25 CPU-seconds for the
#: book on the 2-core AMD EPYC); otherwise the first screen of each page (1280x1600).
FULL_PAGES = os.environ.get("BOOK_SCREENSHOTS", "") == "full"


def _screenshot(driver, doc: str) -> Path:
    """The page as a JPEG under _build/screenshots/ (for people to look at): its first screen,
    or the whole page, however long, with ``BOOK_SCREENSHOTS=full`` (:data:`FULL_PAGES`).

    Chromium encodes the captures as JPEG (DevTools' ``Page.captureScreenshot``; WebDriver's
    screenshot is PNG only, several times slower to encode and decode for pages of this size).
    A whole page is captured with the window one tile tall, scrolled tile by tile.
    """
    import base64
    import io

    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{doc.replace('/', '__')}.jpg"
    tmp = path.with_name(f".tmp-{path.name}")
    if not FULL_PAGES:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "jpeg", "quality": 85})
        tmp.write_bytes(base64.b64decode(shot["data"]))
        os.replace(tmp, path)
        return path
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height, 800), TILE))
    tiles = []  # (page y of the tile's top, image)
    for y in range(0, height, TILE):
        driver.execute_script(f"window.scrollTo(0, {y})")
        # two animation frames: the scrolled page has been painted
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        top = int(driver.execute_script("return window.scrollY"))  # the last tile stops at the bottom
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "jpeg", "quality": 85})
        tiles.append((top, Image.open(io.BytesIO(base64.b64decode(shot["data"])))))
    scale = tiles[0][1].height / min(max(height, 800), TILE)  # device pixels per CSS pixel
    page = Image.new("RGB", (tiles[0][1].width, round(height * scale)), "white")
    for top, tile in tiles:
        page.paste(tile, (0, round(top * scale)))
    page.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, path)
    driver.set_window_size(1280, 1600)
    driver.execute_script("window.scrollTo(0, 0)")
    return path


def _layout_problems(driver) -> list[str]:
    """On the open page: code and output blocks (every `pre` of the article: cells, their outputs,
    code blocks in the prose, `div.highlight pre` included) that scroll sideways in the column,
    Markdown tables printed as raw text instead of rendered, and figures without a
    numbered caption or with alt text that does not describe them."""
    return driver.execute_script("""
        const out = [];
        const blocks = document.querySelectorAll('article pre');
        for (const b of blocks) {
            if (b.scrollWidth > b.clientWidth + 1)
                out.push(`scrolls sideways (${b.scrollWidth} > ${b.clientWidth} px): ` +
                         b.textContent.split('\\n')[0].slice(0, 80));
        }
        // a table's separator row (|---|, or |—| once typography has turned --- into a dash)
        // left in an output's text or paragraph: the Markdown was not rendered as a table
        for (const b of document.querySelectorAll('article div.cell_output :is(pre, p), article div.output :is(pre, p)')) {
            if (/\\|\\s*:?(-{3,}|[\u2013\u2014]):?\\s*\\|/.test(b.textContent))
                out.push('a Markdown table printed as text: ' + b.textContent.slice(0, 80));
        }
        for (const img of document.querySelectorAll('article div.cell_output img')) {
            if (img.closest('.jupyter-widgets')) continue;  // a saved widget's snapshot, drawn by the widget
            const fig = img.closest('figure');
            const caption = fig && fig.querySelector('figcaption');
            if (!caption || !/Fig\\.\\s*[\\d.]+/.test(caption.textContent))
                out.push('a figure without a numbered caption: ' + (img.alt || img.src).slice(0, 60));
            if (!img.alt || img.alt.length < 20 || /^[0-9a-f]{16,}|\\.(png|jpe?g)$/i.test(img.alt))
                out.push('a figure whose alt text does not describe it: ' + (img.alt || '(none)').slice(0, 60));
        }
        return out;""")


@pytest.mark.parametrize("doc", toc_docs())
def test_page_renders(browser, server, doc):
    _needs_playground_assets(doc)
    driver = browser
    url = f"{server}/{doc}.html"
    driver.get_log("browser")  # drop earlier pages' messages
    _open(driver, url)
    facts = notebook_facts(doc)

    # Title: the page's <h1> and the browser title carry the source's first heading.
    title = expected_title(doc)
    headings = [h.text for h in driver.find_elements("css selector", "article h1") if h.is_displayed()]
    assert any(title in h for h in headings), f"{doc}: visible <h1> {headings}, expected {title!r}"
    assert title.split(":")[0] in driver.title

    # Figures: every local image loaded, and the notebook's figures are all there.
    images = driver.execute_script("""
        return Array.from(document.querySelectorAll('article img')).map(i => ({
            src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
            local: /^(data:|blob:)/.test(i.currentSrc || i.src) || (i.currentSrc || i.src).startsWith(location.origin)
        }))""")
    broken = [i["src"] for i in images if i["local"] and not i["ok"]]
    assert not broken, f"{doc}: figures that did not load: {[src[:120] for src in broken]}"
    external = [i["src"][:120] for i in images if not i["local"]]
    assert all("colab-badge" in src for src in external), f"{doc}: unexpected external images {external}"
    loaded = sum(1 for i in images if i["local"] and i["ok"])
    assert loaded >= facts["figures"], f"{doc}: {loaded} figures shown, the notebook has {facts['figures']}"

    # No error output of any kind.
    for selector in (
        ".output.error",
        ".output.traceback",
        ".output.stderr",
        ".system-message",
        ".widget-error",
        ".jupyter-widgets-error",
    ):
        found = driver.find_elements("css selector", selector)
        assert not found, f"{doc}: {len(found)} '{selector}' element(s), first: {found[0].text[:300]!r}"
    # the page's text, folded parts included, without its scripts (innerText would lay the page out again)
    body = driver.execute_script(
        "const b = document.body.cloneNode(true);"
        "b.querySelectorAll('script, style, noscript').forEach(e => e.remove());"
        "return b.textContent"
    )
    for marker in ("Traceback (most recent call last)", "Error rendering Jupyter widget", "Could not find model"):
        assert marker not in body, f"{doc}: page shows {marker!r}"

    # Exercise solutions are folded behind a "Show solution" toggle.
    if facts["solutions"]:
        toggles = driver.find_elements("xpath", "//*[contains(text(), 'Show solution')]")
        assert len(toggles) >= facts["solutions"], f"{doc}: {len(toggles)} solution toggles"
        open_solutions = driver.execute_script(
            "return document.querySelectorAll('details.hide[open], details.toggle-details[open], "
            "details.sd-dropdown[open]').length"
        )
        assert open_solutions == 0, f"{doc}: {open_solutions} solutions are unfolded on load"

    # Equations are typeset by the vendored MathJax (no CDN: other hosts are blocked here).
    if driver.find_elements("css selector", "article .math"):
        deadline = time.time() + 30
        while time.time() < deadline and not driver.find_elements("css selector", "article mjx-container"):
            time.sleep(0.3)
        typeset = driver.find_elements("css selector", "article mjx-container")
        assert typeset, f"{doc}: equations are shown as raw TeX (MathJax did not load)"
        raw = driver.execute_script(
            "return Array.from(document.querySelectorAll('article .math')).filter("
            "e => !e.querySelector('mjx-container') && /\\\\[a-zA-Z]/.test(e.textContent)).length"
        )
        assert raw == 0, f"{doc}: {raw} equation(s) left as raw TeX"

    # Saved widget state renders as real controls (ipywidgets HTML manager).
    if facts["widget_views"]:
        deadline = time.time() + 30
        while time.time() < deadline and len(driver.find_elements("css selector", ".jupyter-widgets")) == 0:
            time.sleep(0.3)
        rendered = driver.find_elements("css selector", ".jupyter-widgets")
        assert rendered, f"{doc}: none of the {facts['widget_views']} saved widgets rendered"

    # No failed request for a file of the book (external hosts are blocked on purpose).
    severe = [
        m["message"]
        for m in driver.get_log("browser")
        if m["level"] == "SEVERE"
        and "127.0.0.1" in m["message"]
        and not any(noise in m["message"] for noise in KNOWN_CONSOLE_NOISE)
    ]
    assert not severe, f"{doc}: browser errors: {severe}"

    # The page reads in its column at a 1280-pixel window: nothing scrolls sideways,
    # tables are tables, figures have numbered captions and alt text.
    problems = _layout_problems(driver)
    assert not problems, (
        f"{doc}: " + "; ".join(problems[:5]) + (f" ... ({len(problems)} in all)" if len(problems) > 5 else "")
    )

    assert _screenshot(driver, doc).stat().st_size > 10_000

    # The self-check quizzes answer in the page as loaded (no kernel).
    questions = quiz_questions(doc)
    if questions:
        _answer_quizzes(driver, doc, questions)


def test_widget_controls_render(browser, server):
    """The interactive chapter's saved controls appear: dropdowns, the strength slider, upload buttons."""
    docs = [d for d in toc_docs() if notebook_facts(d)["widget_views"]]
    if not any("interactive" in d for d in docs):
        pytest.skip("no interactive chapter in the TOC")
    doc = next(d for d in docs if "interactive" in d)
    _open(browser, f"{server}/{doc}.html")
    deadline = time.time() + 30
    while time.time() < deadline and not browser.find_elements("css selector", ".widget-dropdown select"):
        time.sleep(0.3)
    dropdowns = browser.find_elements("css selector", ".widget-dropdown select")
    sliders = browser.find_elements("css selector", ".widget-slider, .widget-hslider")
    uploads = browser.find_elements("css selector", ".widget-upload, .jupyter-widgets input[type=file]")
    assert len(dropdowns) >= 2 and sliders and uploads, (
        f"{doc}: {len(dropdowns)} dropdowns, {len(sliders)} sliders, {len(uploads)} upload buttons rendered"
    )
    options = [o.text for o in dropdowns[0].find_elements("tag name", "option")]
    assert "chelsea" in options, f"{doc}: photograph menu shows {options}"
    # The Output widget holds the figure drawn when the notebook was saved.
    figure = browser.execute_script(
        "const i = document.querySelector('.widget-output img'); return i && i.naturalWidth"
    )
    assert figure and figure > 100, f"{doc}: the saved comparison figure is missing from the widget output"


def _answer_quizzes(driver, doc: str, questions: list[dict]) -> None:
    """On the open page: every self-check quiz rendered from the stored page (no kernel) answers:
    a wrong choice is marked incorrect, the right one correct; a numeric question accepts its value."""
    from selenium.webdriver.common.keys import Keys

    deadline = time.time() + 30
    while time.time() < deadline and len(driver.find_elements("css selector", "article .Quiz")) < len(questions):
        time.sleep(0.3)
    wrappers = driver.find_elements("css selector", "article .Quiz")
    assert len(wrappers) == len(questions), f"{doc}: {len(wrappers)} quiz questions shown, {len(questions)} stored"
    for wrapper, q in zip(wrappers, questions):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", wrapper)
        feedback = wrapper.find_element("css selector", ".Feedback")
        if q["type"] in ("multiple_choice", "many_choice"):
            buttons = wrapper.find_elements("css selector", "label.MCButton")
            assert len(buttons) == len(q["answers"]), f"{doc}: {q['question'][:40]!r}"
            # which buttons the page marks correct, read in one call (not one round trip per button)
            marked = driver.execute_script(
                "return arguments[0].map(b => b.getAttribute('data-correct') === 'true')", buttons
            )
            wrong = [b for b, correct in zip(buttons, marked) if not correct]
            if wrong:
                wrong[0].click()
                assert "incorrect" in feedback.get_attribute("class"), f"{doc}: wrong answer not marked"
            next(b for b, correct in zip(buttons, marked) if correct).click()
        else:
            value = next(a["value"] for a in q["answers"] if a.get("correct"))
            box = wrapper.find_element("css selector", "input.Input-text")
            box.clear()
            box.send_keys(str(value), Keys.ENTER)
        classes = feedback.get_attribute("class")
        assert "correct" in classes.split(), f"{doc}: {q['question'][:50]!r}: feedback {classes!r}, {feedback.text!r}"
        assert feedback.text.strip(), f"{doc}: empty feedback"
    # the answered quiz only (the page itself is captured before the answers)
    (SCREENSHOTS / f"{doc.replace('/', '__')}_quiz.png").write_bytes(wrappers[-1].screenshot_as_png)


def test_the_book_has_quizzes():
    """The chapters' self-checks are stored in the notebooks (test_page_renders answers them on each page)."""
    docs = [d for d in toc_docs() if quiz_questions(d)]
    assert len(docs) >= len([d for d in toc_docs() if d.startswith("notebooks/")]), docs


def test_navigation_lists_every_chapter(browser, server):
    _open(browser, f"{server}/{toc_docs()[0]}.html")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-links a')).map(a => a.getAttribute('href'))"
    )
    for doc in toc_docs()[1:]:
        name = doc.split("/")[-1] + ".html"
        assert any(href and href.endswith(name) for href in links), f"sidebar has no link to {doc}"


def test_references_page_shows_bibtex(browser, server):
    _open(browser, f"{server}/book/references.html")
    text = browser.find_element("tag name", "body").text
    assert "@inproceedings{zhang2018unreasonable" in text
    assert "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric" in text
    for key in ("krizhevsky2012imagenet", "simonyan2015vgg", "iandola2016squeezenet"):
        assert key in text, f"references page lacks the BibTeX entry {key}"


def test_playground_page_computes_an_example(browser, server):
    """The built playground page: an example pair's button gives a distance and draws the overlay."""
    _needs_playground_assets(PLAYGROUND_DOC)
    _open(browser, f"{server}/{PLAYGROUND_DOC}.html")
    deadline = time.time() + 60
    while time.time() < deadline and not browser.find_elements("css selector", ".lp-example"):
        time.sleep(0.3)
    buttons = browser.find_elements("css selector", ".lp-example")
    status = browser.find_element("css selector", ".lp-status").text
    assert buttons, f"no example pairs on the playground page; status: {status!r}"
    buttons[0].click()
    while time.time() < deadline and browser.find_element("css selector", ".lp-distance").text in ("-", ""):
        time.sleep(0.3)
    text = browser.find_element("css selector", ".lp-distance").text
    status = browser.find_element("css selector", ".lp-status").text
    assert re.fullmatch(r"0\.\d{4}", text), f"distance shown: {text!r}; status: {status!r}"
    width = browser.execute_script("return document.querySelector('.lp-overlay').width")
    assert width == 256, f"overlay canvas is {width} px wide, the example pairs are 256x256"
    _screenshot(browser, f"{PLAYGROUND_DOC}_example")
