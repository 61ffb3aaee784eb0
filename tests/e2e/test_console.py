"""The operator console at `/` on the metrics address, in a real browser: Debian's Chromium
driven by Playwright (no browser download), axe-core from npm (tests/console). trailhead runs two
pipelines, one with a plugin; the OpenTelemetry SDK sends spans. Screenshots of each view go to
docs/console/ with TRAILHEAD_SCREENSHOTS=1 (so a test run leaves the work tree as it was)."""

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import REPO, gateway_config

CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "tests" / "console" / "node_modules" / "axe-core" / "axe.min.js"
PLUGINS = REPO / "target" / "plugins"
SHOTS = REPO / "docs" / "console" if os.environ.get("TRAILHEAD_SCREENSHOTS") == "1" else None



@pytest.fixture(autouse=True)
def browser_installed():
    """`make test` installs both (`make browser`): missing, the run fails rather than skips."""
    if not CHROMIUM.exists() or not AXE.exists():
        pytest.fail("needs `make browser` (Debian's chromium, axe-core from tests/console)")


def console_config(sink, plugin):
    config = gateway_config(sink.endpoint)
    del config["receivers"]["zipkin"]
    # Both versions the test swaps between take this config (resource-stamp and faults).
    config["processors"] = {"plugin/stamp": {"plugin": str(plugin), "fault": "none", "attributes": {"stamp": "v1"}}}
    # A credential the config view must not show.
    config["exporters"]["otlp/sink"]["headers"] = {"authorization": "Bearer console-secret-123"}
    config["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": ["plugin/stamp"], "exporters": ["otlp/sink"]},
        "logs": {"receivers": ["otlp"], "exporters": ["otlp/sink"]},
    }
    return config


class SpanSender:
    """The OpenTelemetry SDK sending a few spans every 100 ms over OTLP/HTTP until stopped."""

    def __init__(self, trailhead):
        exporter = OTLPSpanExporter(endpoint=trailhead.url("otlp (http)", "/v1/traces"))
        self.provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        tracer = self.provider.get_tracer("console-test")
        while not self.stopped.is_set():
            for n in range(5):
                with tracer.start_as_current_span(f"GET /cart/{n}") as span:
                    span.set_attribute("http.route", "/cart")
            time.sleep(0.1)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.provider.shutdown()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@contextlib.contextmanager
def browser_session():
    """A page in Debian's Chromium, for tests in other files (the Kubernetes view's)."""
    from playwright.sync_api import sync_playwright
    if not CHROMIUM.exists() or not AXE.exists():
        pytest.fail("needs `make browser` (Debian's chromium, axe-core from tests/console)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched.new_page(viewport={"width": 1280, "height": 860})
        finally:
            launched.close()


def rate_of(page, pipeline, source, target):
    """The number on the edge from `source` to `target` (its first `N/s`), or None."""
    text = page.locator(f'.pipeline[data-pipeline="{pipeline}"] text.rate[data-from="{source}"][data-to="{target}"]').text_content()
    for word in text.split():
        if word.endswith("/s") and word[:-2].replace(".", "").isdigit():
            return float(word[:-2])
    return None


def wait_until(check, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def serious_violations(page):
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in result if v["impact"] in ("serious", "critical")]


def open_tab(page, name):
    page.get_by_role("tab", name=name).click()


def test_console_in_a_browser(sink, start_trailhead, browser, tmp_path):
    plugin = tmp_path / "stamp.wasm"
    shutil.copyfile(PLUGINS / "resource-stamp.wasm", plugin)
    config = console_config(sink, plugin)
    trailhead = start_trailhead(config)
    sender = SpanSender(trailhead)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        page.goto(trailhead.url("metrics", "/"))
        shots = SHOTS or tmp_path

        # The graph shows the configured components, each pipeline in its order.
        page.wait_for_selector('.pipeline[data-pipeline="logs"] .node[data-component="otlp/sink"]')
        traces = page.locator('.pipeline[data-pipeline="traces"] .node')
        assert traces.evaluate_all("nodes => nodes.map(n => [n.dataset.component, n.dataset.role])") == [
            ["otlp", "receiver"], ["plugin/stamp", "processor"], ["otlp/sink", "exporter"]]
        logs = page.locator('.pipeline[data-pipeline="logs"] .node')
        assert logs.evaluate_all("nodes => nodes.map(n => n.dataset.component)") == ["otlp", "otlp/sink"]

        # The rates move: spans flow in at the receiver and out at the exporter.
        wait_until(lambda: rate_of(page, "traces", "otlp", "plugin/stamp"), "a receiving rate")
        wait_until(lambda: rate_of(page, "traces", "plugin/stamp", "otlp/sink"), "a sending rate")
        assert rate_of(page, "logs", "otlp", "otlp/sink") == 0
        plugin_node = page.locator('.pipeline[data-pipeline="traces"] .node[data-component="plugin/stamp"]')
        wait_until(lambda: "serving" in plugin_node.get_attribute("aria-label"), "the plugin's state")
        page.screenshot(path=str(shots / "pipelines.png"), full_page=True)

        # The diff view shows the attribute the plugin adds.
        open_tab(page, "Live tap")
        page.select_option("#diff-pipeline", "traces")
        page.select_option("#diff-processor", "plugin/stamp")
        page.click("#diff-start")
        page.wait_for_selector("#diff-table", timeout=15000)
        rows = page.locator("#diff-table tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        assert ["resource checkout", "added", "stamp", "", "v1"] in rows, rows

        # The live tap streams batches after the plugin; the filter keeps the stamped ones; a batch
        # copies as OTLP JSON.
        page.select_option("#tap-pipeline", "traces")
        page.select_option("#tap-point", label="after plugin/stamp")
        page.fill("#tap-filter", "stamp=v1")
        page.click("#tap-start")
        page.wait_for_selector("#tap-batches li", timeout=10000)
        page.get_by_role("button", name="Pause").click()
        assert "paused" in page.text_content("#tap-status")
        page.locator("#tap-batches li").first.get_by_role("button", name="Copy OTLP JSON").click()
        copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
        stamps = [a for rs in copied["resourceSpans"] for a in rs["resource"]["attributes"] if a["key"] == "stamp"]
        assert stamps, copied
        page.fill("#tap-filter", "stamp=v2")
        assert page.locator("#tap-batches li").count() == 0
        page.fill("#tap-filter", "checkout")
        assert page.locator("#tap-batches li").count() >= 1
        page.screenshot(path=str(shots / "tap.png"), full_page=True)
        page.click("#tap-stop")

        # A swap appears in the history; the reload button shows the typed outcome.
        staging = tmp_path / "staging.wasm"
        shutil.copyfile(PLUGINS / "faults.wasm", staging)
        os.replace(staging, plugin)
        open_tab(page, "Plugins")
        page.wait_for_selector("#swaps li .outcome-applied", timeout=10000)
        assert "plugin/stamp" in page.text_content("#swaps")
        row = page.locator('#plugins tr[data-processor="plugin/stamp"]')
        wait_until(lambda: "faults" in row.text_content(), "the new version in the table")
        page.click("#reload")
        page.wait_for_function("document.getElementById('reload-outcome').textContent.startsWith('config ')")
        assert page.text_content("#reload-outcome") == "config unchanged; plugin/stamp: unchanged"

        # The config view: the running config with the credential redacted. A reload that changes
        # a processor's settings and gives the logs pipeline a processor lists both changes, and
        # the graph redraws with the new processor.
        open_tab(page, "Config")
        # The stream sends the config again with its next snapshot (within a second).
        page.wait_for_function("document.getElementById('last-reload').textContent.includes('config unchanged')")
        text = page.text_content("#config-text")
        assert "[REDACTED]" in text and "console-secret-123" not in text, text
        assert "plugin/stamp:" in text
        config["processors"]["plugin/stamp"]["attributes"]["stamp"] = "v2"
        config["processors"]["attributes/team"] = {"actions": [{"key": "team", "value": "core", "action": "insert"}]}
        config["service"]["pipelines"]["logs"]["processors"] = ["attributes/team"]
        trailhead.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        response = requests.post(trailhead.url("metrics", "/reload"), timeout=30)
        assert response.json()["config"] == "applied", response.text
        page.wait_for_selector("#reload-changes:not([hidden]) tbody tr")
        rows = page.locator("#reload-changes tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        assert ["processors.plugin/stamp.attributes.stamp", "v1", "v2"] in rows, rows
        assert ["service.pipelines.logs.processors", "—", '["attributes/team"]'] in rows, rows
        page.wait_for_function("document.getElementById('last-reload').textContent.includes('config applied')")
        assert "console-secret-123" not in page.content()
        page.screenshot(path=str(shots / "config.png"), full_page=True)
        open_tab(page, "Pipelines")
        page.wait_for_selector('.pipeline[data-pipeline="logs"] .node[data-component="attributes/team"]')
        open_tab(page, "Kubernetes")
        assert page.text_content("#k8s-summary") == "No Kubernetes cache: no k8sattributes processor runs."
        open_tab(page, "Plugins")
        # A version that does not load is rejected with its reason; the running one serves on.
        staging.write_bytes(b"\0asm this is not a component")
        os.replace(staging, plugin)
        page.wait_for_selector("#swaps li .outcome-rejected", timeout=10000)
        assert "faults" in row.text_content()
        page.screenshot(path=str(shots / "plugins.png"), full_page=True)

        # Keyboard: the tabs move with the arrow keys, and every graph node takes the focus.
        page.get_by_role("tab", name="Plugins").focus()
        page.keyboard.press("ArrowLeft")
        assert page.evaluate("document.activeElement.id") == "tab-pipelines"
        assert page.get_attribute("#tab-pipelines", "aria-selected") == "true"
        assert page.is_visible("#view-pipelines") and not page.is_visible("#view-plugins")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.dataset.component")
        assert focused == "otlp", focused
        assert "receiver otlp: serving" in page.evaluate("document.activeElement.getAttribute('aria-label')")

        # axe-core: no serious or critical violation in any view.
        page.add_script_tag(path=str(AXE))
        for tab in ["Pipelines", "Plugins", "Live tap", "Config", "Kubernetes"]:
            open_tab(page, tab)
            assert serious_violations(page) == [], tab
    finally:
        context.close()
        sender.stop()


def non_loopback_address():
    """This host's address on its first network, or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it picks the route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


# The console shows live data and can reload: a client from another host is refused unless the
# operator opens it (`console: open`); `console: off` serves nothing.
@pytest.mark.parametrize("access,expected", [("local", 403), ("open", 200), ("off", 404)])
def test_console_access(sink, start_trailhead, access, expected):
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this host")
    config = gateway_config(sink.endpoint)
    config.setdefault("service", {})["telemetry"] = {"metrics": {"address": f"{address}:0", "console": access}}
    trailhead = start_trailhead(config)
    page = requests.get(trailhead.url("metrics", "/"), timeout=5)
    assert page.status_code == expected, page.text
    if expected == 403:
        assert page.text == "/ answers only connections from this host"
    if expected == 200:
        assert "<title>trailhead console</title>" in page.text
        with requests.get(trailhead.url("metrics", "/console/events"), stream=True, timeout=5) as events:
            assert events.headers["content-type"] == "text/event-stream"
            first = next(events.iter_lines(decode_unicode=True))
            assert first == "event: topology"
    with requests.get(trailhead.url("metrics", "/console/events"), timeout=5, stream=True) as events:
        assert events.status_code == expected
    assert requests.get(trailhead.url("metrics", "/metrics"), timeout=5).status_code == 200
