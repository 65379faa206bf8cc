"""The explorer page in a real browser: Debian's chromium, headless, driven by selenium.

Nothing is downloaded: selenium is given the system chromedriver and chromium explicitly (CI
installs both with apt). The page is opened from file://, stepped with the keyboard and with its
buttons, and what it shows is compared with `backward()`'s numbers.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainrule.explorer import explore
from conftest import REQUIRE_ALL, need
from test_explorer import neuron, seed001

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT = 30  # seconds for a page load or a wait: nothing here should take more than one or two


def need_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        message = f"{', '.join(missing)} not found: apt-get install chromium chromium-driver"
        if REQUIRE_ALL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = need("selenium.webdriver")
    need_chromium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium then never looks for (or downloads) a driver of its own;
    # its Selenium Manager, which would, is made to fail loudly if it is ever asked.
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_downloads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("selenium tried to find a browser or driver itself")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SeleniumManager, "binary_paths", no_downloads)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    driver.set_script_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, path: Path) -> Any:
    """Load the page from file:// and wait until its script has shown step 0."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.resolve().as_uri())
    counter = driver.find_element("id", "cr-counter")
    # the static text says "Step 0 of N"; the script's says which phase that is
    WebDriverWait(driver, TIMEOUT).until(lambda d: counter.text.endswith(": before the forward pass"))
    return driver.find_element("tag name", "body")


def assert_no_console_errors(driver: Any) -> None:
    problems = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == []


def state(driver: Any) -> dict[str, Any]:
    """What the page shows now: the counter, the panel, and per value its record and table texts."""
    return driver.execute_script(
        """
        var out = {counter: document.getElementById('cr-counter').textContent,
                   title: document.getElementById('cr-title').textContent,
                   lines: Array.from(document.querySelectorAll('#cr-lines li')).map(li => li.textContent),
                   current: null, values: {}};
        document.querySelectorAll('#cr-table tbody tr').forEach(function (row) {
          var id = row.id.slice('cr-row-'.length);
          var texts = document.getElementById('cr-' + id).getElementsByTagName('text');
          var name = row.querySelector('th').textContent;
          if (row.classList.contains('cr-current')) { out.current = name; }
          out.values[name] = {
            data: row.querySelector('.cr-data').textContent,
            grad: row.querySelector('.cr-grad').textContent,
            gradExact: row.querySelector('.cr-grad').getAttribute('data-value'),
            recordData: texts[texts.length - 2].textContent,
            recordGrad: texts[texts.length - 1].textContent,
            highlighted: document.getElementById('cr-' + id).classList.contains('cr-current')
          };
        });
        return out;
        """
    )


def assert_end_state_is_backwards(driver: Any, make: Any) -> None:
    """The gradients the page shows at its last step are exactly those of a fresh backward()."""
    root, named = make()
    root.backward()
    shown = state(driver)["values"]
    for name, value in named.items():
        assert float(shown[name]["gradExact"]) == value.grad, name  # exactly, from Python's repr
        assert shown[name]["recordGrad"] == f"grad {value.grad:.4f}", name
        assert shown[name]["recordData"] == f"data {value.data:.4f}", name


def test_seed001_stepped_with_the_keyboard(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    L, _ = seed001()
    ex = explore(L)
    body = open_page(browser, ex.save(tmp_path / "seed001.html"))
    last = len(ex.steps) - 1
    first = state(browser)
    assert first["counter"] == f"Step 0 of {last}: before the forward pass"
    assert all(v["recordData"] == "data ?" and v["recordGrad"] == "grad ?" for v in first["values"].values())
    for k in range(1, last + 1):
        body.send_keys(Keys.ARROW_RIGHT)
        shown = state(browser)
        step = ex.steps[k]
        assert shown["counter"].startswith(f"Step {k} of {last}")
        assert shown["title"] == step.title and shown["lines"] == list(step.lines)  # Python's text
        if step.node is not None:
            assert shown["current"] == step.node and shown["values"][step.node]["highlighted"]
        if step.phase == "forward":  # no gradient before the backward pass
            assert all(v["recordGrad"] == "grad ?" for v in shown["values"].values())
        if k == 10:  # the last backward step: e = a * b hands a and b their gradients
            assert "dL/da = dL/de * ∂e/∂a = -2.0 * -3.0 = 6.0" in shown["lines"]
    assert state(browser)["counter"] == f"Step {last} of {last}: done"
    body.send_keys(Keys.ARROW_RIGHT)  # past the end: stays
    assert state(browser)["counter"].startswith(f"Step {last} of")
    assert_end_state_is_backwards(browser, seed001)
    body.send_keys(Keys.HOME)
    assert state(browser)["values"]["a"]["grad"] == "?"
    body.send_keys(Keys.END)
    assert_end_state_is_backwards(browser, seed001)
    assert_no_console_errors(browser)


def test_tanh_neuron_stepped_with_the_buttons(browser: Any, tmp_path: Path) -> None:
    o, _ = neuron()
    ex = explore(o)
    open_page(browser, ex.save(tmp_path / "neuron.html"))
    last = len(ex.steps) - 1

    def click(name: str) -> None:
        browser.find_element("id", f"cr-{name}").click()

    for _ in range(last):
        click("next")
    assert state(browser)["counter"] == f"Step {last} of {last}: done"
    assert_end_state_is_backwards(browser, neuron)
    click("back")
    assert state(browser)["counter"].startswith(f"Step {last - 1} of")
    click("start")
    assert state(browser)["counter"].startswith("Step 0 of")
    click("end")
    assert_end_state_is_backwards(browser, neuron)
    # the step through tanh: ∂o/∂n = 1 - o**2 = 0.5
    tanh_step = next(k for k, s in enumerate(ex.steps) if s.phase == "backward" and s.node == "o")
    browser.execute_script(
        "var s = document.getElementById('cr-slider'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input'));",
        tanh_step,
    )
    shown = state(browser)
    assert "do/dn = do/do * ∂o/∂n = 1.0 * 0.5 = 0.5" in shown["lines"]
    assert shown["values"]["n"]["grad"] == "0.5" and shown["values"]["x1"]["grad"] == "?"
    assert_no_console_errors(browser)


def test_play_pause_slider_and_focus(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    L, _ = seed001()
    body = open_page(browser, explore(L).save(tmp_path / "play.html"))
    play = browser.find_element("id", "cr-play")
    body.send_keys(Keys.SPACE)  # space plays ...
    assert play.get_attribute("aria-pressed") == "true" and play.text == "Pause"
    WebDriverWait(browser, TIMEOUT).until(lambda d: not state(d)["counter"].startswith("Step 0 "))
    body.send_keys(Keys.SPACE)  # ... and pauses
    assert play.get_attribute("aria-pressed") == "false" and play.text == "Play"
    paused_at = state(browser)["counter"]
    play.click()
    WebDriverWait(browser, TIMEOUT).until(lambda d: state(d)["counter"] != paused_at)
    play.click()
    assert play.get_attribute("aria-pressed") == "false"
    # the slider takes the arrow keys itself
    slider = browser.find_element("id", "cr-slider")
    browser.find_element("id", "cr-start").click()
    slider.send_keys(Keys.ARROW_RIGHT)
    assert state(browser)["counter"].startswith("Step 1 of")
    # keyboard focus is visible: a button reached with Tab has an outline
    browser.find_element("id", "cr-start").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "cr-back"
    assert focused.value_of_css_property("outline-style") != "none"
    assert browser.find_element("id", "cr-panel").get_attribute("aria-live") == "polite"
    assert_no_console_errors(browser)


def test_screenshot_shows_the_graph_and_the_highlight(browser: Any, tmp_path: Path) -> None:
    image_module = need("PIL.Image")
    from selenium.webdriver.common.keys import Keys

    L, _ = seed001()
    ex = explore(L)
    body = open_page(browser, ex.save(tmp_path / "shot.html"))
    backward_e = next(k for k, s in enumerate(ex.steps) if s.phase == "backward" and s.node == "e")
    for _ in range(backward_e):
        body.send_keys(Keys.ARROW_RIGHT)
    png = browser.get_screenshot_as_png()
    (tmp_path / "shot.png").write_bytes(png)
    image = image_module.open(io.BytesIO(png)).convert("RGB")
    assert image.size[0] >= 800 and image.size[1] >= 600
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, boxes, lines: not a blank page
    counts = {rgb: n for n, rgb in colours}
    assert counts.get((0xFD, 0xE6, 0x8A), 0) > 500  # the current node's fill
    assert counts.get((0xDB, 0xEA, 0xFE), 0) > 500  # the inputs' blue boxes: the graph is drawn
    assert_no_console_errors(browser)


def test_hostile_labels_stay_text_and_a_small_mlp_works(browser: Any, tmp_path: Path) -> None:
    import random

    from selenium.webdriver.common.keys import Keys

    from chainrule import Value
    from chainrule.losses import svm_loss
    from chainrule.nn import MLP

    a = Value(2.0, label='</script><script>document.title="owned"</script>')
    b = Value(3.0, label="<b>x</b> & {y|z}")
    out = a * b
    out.label = "out"
    body = open_page(browser, explore(out).save(tmp_path / "labels.html"))
    body.send_keys(Keys.END)
    assert browser.title.startswith("chainrule explorer") and browser.title != "owned"
    assert set(state(browser)["values"]) == {a.label, b.label, "out"}
    assert_no_console_errors(browser)

    random.seed(0)
    model = MLP(2, [4, 4, 1])
    loss = svm_loss([model([0.5, -1.0])], [1])
    loss.label = "loss"
    ex = explore(loss)
    body = open_page(browser, ex.save(tmp_path / "mlp.html"))
    body.send_keys(Keys.END)
    loss.backward()
    shown = state(browser)["values"]
    for i, p in enumerate(model.parameters()):
        name = ex.names[p]
        assert float(shown[name]["gradExact"]) == p.grad, (i, name)
    assert_no_console_errors(browser)


def test_the_notebook_view_works_inside_its_sandboxed_frame(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    L, _ = seed001()
    ex = explore(L)
    host = tmp_path / "notebook.html"  # what Jupyter does with _repr_html_: put it in its own page
    host.write_text(f"<!DOCTYPE html><html><body><p>cell output:</p>{ex._repr_html_()}</body></html>")
    browser.get_log("browser")
    browser.get(host.resolve().as_uri())
    browser.switch_to.frame(browser.find_element("tag name", "iframe"))
    try:
        assert state(browser)["counter"].startswith("Step 0 of 11: before")  # the script has run
        graph = browser.find_element("id", "cr-graph")  # focusable: a click puts the keys in the frame
        graph.click()
        graph.send_keys(Keys.END)
        assert_end_state_is_backwards(browser, seed001)
        graph.send_keys(Keys.ARROW_LEFT)
        assert state(browser)["counter"].startswith("Step 10 of 11")
    finally:
        browser.switch_to.default_content()
    assert_no_console_errors(browser)


# The current node, its text on screen and its table row, checked at every step in the page itself
# (one script call walks all the steps with the keyboard, as a reader would).
WALK = """
var out = [], last = JSON.parse(document.getElementById('cr-data').textContent).steps.length - 1;
var graph = document.getElementById('cr-graph'), tableBox = document.getElementById('cr-table-box');
function inside(r, b) { return r.left >= b.left - 1 && r.right <= b.right + 1 && r.top >= b.top - 1
                               && r.bottom <= b.bottom + 1; }
var view = {left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight};
for (var k = 0; k <= last; k++) {
  var row = document.querySelector('#cr-table tbody tr.cr-current');
  // the current value and, in a backward step, its operation: each in view, with readable text
  document.querySelectorAll('g.node.cr-current').forEach(function (node) {
    var r = node.getBoundingClientRect(), least = Infinity;
    Array.from(node.getElementsByTagName('text')).forEach(function (t) {
      var m = t.getScreenCTM();
      least = Math.min(least, parseFloat(t.getAttribute('font-size')) * Math.sqrt(m.a * m.a + m.b * m.b));
    });
    if (!inside(r, graph.getBoundingClientRect())) { out.push([k, node.id, 'outside the picture']); }
    if (!inside(r, view)) { out.push([k, node.id, 'outside the window']); }
    if (least < 10) { out.push([k, node.id, 'text of ' + least.toFixed(1) + ' px']); }
  });
  if (row && !inside(row.getBoundingClientRect(), tableBox.getBoundingClientRect())) {
    out.push([k, row.id, 'outside the table']);
  }
  if (k > 0 && k < last && !row) { out.push([k, 'no current row']); }
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
}
return {problems: out, fit: document.getElementById('cr-fit').getAttribute('aria-pressed'), last: last};
"""


def a_chain(n: int) -> Any:
    from chainrule import Value

    v = Value(0.5, label="x")
    for _ in range(n - 1):
        v = v.tanh()
    v.label = "y"
    return v


def mlp_loss() -> Any:
    import random

    from chainrule.losses import svm_loss
    from chainrule.nn import MLP

    random.seed(0)
    loss = svm_loss([MLP(2, [4, 4, 1])([0.5, -1.0])], [1])
    loss.label = "loss"
    return loss


@pytest.mark.parametrize("make", [lambda: a_chain(200), mlp_loss], ids=["chain200", "mlp_loss"])
def test_big_graphs_stay_readable_and_the_view_follows_every_step(browser: Any, tmp_path: Path, make) -> None:
    root = make()
    ex = explore(root)
    open_page(browser, ex.save(tmp_path / "big.html"))
    walked = browser.execute_script(WALK)
    assert walked["last"] == ex.step_count
    assert walked["fit"] == "false"  # fitting these to the width would make their text unreadable
    assert walked["problems"] == []
    browser.find_element("id", "cr-fit").click()  # fitting stays the reader's choice
    assert browser.find_element("id", "cr-fit").get_attribute("aria-pressed") == "true"
    assert_no_console_errors(browser)


def test_a_small_graph_fits_and_outlines_keep_one_meaning(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    L, _ = seed001()
    ex = explore(L)
    body = open_page(browser, ex.save(tmp_path / "small.html"))
    assert browser.find_element("id", "cr-fit").get_attribute("aria-pressed") == "true"
    assert browser.execute_script(WALK)["problems"] == []
    body.send_keys(Keys.HOME)
    backward_e = next(k for k, s in enumerate(ex.steps) if s.phase == "backward" and s.node == "e")
    for _ in range(backward_e):
        body.send_keys(Keys.ARROW_RIGHT)
    # the current node's inputs are outlined solid: a dashed outline means "takes no gradient"
    dashes = browser.execute_script(
        "return Array.from(document.querySelectorAll('g.node.cr-touched polygon'))"
        ".map(p => getComputedStyle(p).strokeDasharray);"
    )
    assert dashes and set(dashes) == {"none"}
    # one gradient column; its state (partial, complete) is shown after the number, not in a column
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('#cr-table thead th')).map(th => th.textContent);"
    )
    assert headers == ["current", "value", "made by", "data", "gradient"]
    cell = browser.find_element("css selector", "#cr-row-n0 .cr-grad")
    assert cell.text.startswith("6.0") and cell.get_attribute("data-state") == "complete"
    assert_no_console_errors(browser)
