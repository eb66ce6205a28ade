"""The HTML report in a real headless browser: Debian's chromium driven by chromedriver (selenium).

The page is the report of the realistic fleet of tests/unit/plugins/filter/test_report_fixtures.py (a host with
findings of both checks, a compliant one, a failed one, an unreachable one), rendered by the
filter the role uses. Checks: the summary a person sees, the filters (host, status, rule, free
text, rule chips, clear), no SEVERE console message (script errors, CSP violations), nothing
fetched. A screenshot goes to the test's tmp dir; VIRTFLEET_UPDATE_SCREENSHOT=1 also writes
docs/report-screenshot.png.

Needs the Debian packages chromium and chromium-driver (installed here when missing, as root) and
the pip package selenium (requirements.txt).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import subprocess

import pytest

from _itlib import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
GENERATED_AT = "2026-11-22T04:00:00Z"
SCREENSHOT = os.path.join(ROOT, "docs", "report-screenshot.png")

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # reported by the fixture, so that the suite fails instead of skipping
    webdriver = None


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    from ansible_collections.virtfleet.libvirt.plugins.filter import fleet_report
    fixtures = _load(os.path.join(ROOT, "tests", "unit", "plugins", "filter", "test_report_fixtures.py"), "report_fixtures")
    report = fleet_report.build_report(fixtures.HOSTS, fixtures.fleet_hostvars(), title="Nightly fleet audit",
                                       generated_at=GENERATED_AT)
    path = tmp_path_factory.mktemp("report-html") / "compliance.html"
    path.write_text(fleet_report.render_html(report), encoding="utf-8")
    return report, path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if webdriver is None:
        pytest.fail("selenium is not installed in this venv: pip install selenium (pinned in requirements.txt)",
                    pytrace=False)
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "ensure-apt.sh"), "chromium", "chromium-driver"],
                              capture_output=True, text=True, timeout=1200, check=False)
        if proc.returncode != 0:
            pytest.fail("chromium/chromium-driver are missing and could not be installed:\n%s%s"
                        % (proc.stdout, proc.stderr), pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--window-size=1280,1000",
                "--user-data-dir=%s" % tmp_path_factory.mktemp("chromium-profile")):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, report_html):
    """The report freshly loaded (filters cleared); the console log is emptied first."""
    report, path = report_html
    browser.get_log("browser")
    browser.get(path.as_uri())
    browser.find_element(By.ID, "f-count")  # the page is there
    return browser, report


def visible(driver, css):
    return [el for el in driver.find_elements(By.CSS_SELECTOR, css) if el.is_displayed()]


def severe(driver):
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def test_summary_is_what_a_person_sees_first(page):
    driver, report = page
    assert driver.title == "Nightly fleet audit"
    verdict = driver.find_element(By.ID, "verdict").text
    assert verdict.startswith("FAIL") and "1 host unreachable: hv-par-01" in verdict
    cards = {c.find_element(By.CLASS_NAME, "l").text.lower(): c.find_element(By.CLASS_NAME, "n").text
             for c in driver.find_elements(By.CSS_SELECTOR, "#summary .card")}
    s = report["summary"]
    assert cards["hosts"] == str(s["hosts"]["total"]) == "4"
    assert cards["unreachable"] == "1" and cards["audit failed"] == "1"
    assert cards["domains"] == "9" and cards["findings"] == "10" and cards["restart pending"] == "5"
    assert {k: cards[k] for k in s["findings"]["by_status"]} == \
        {k: str(v) for k, v in s["findings"]["by_status"].items()}
    assert set(s["findings"]["by_status"]) == {"failed", "unknown", "conflict", "not_attempted", "blocked", "drift",
                                               "vanished", "pending", "skipped", "fixed"}
    # The summary cards are above the fold; the unreachable host is marked in the host table.
    assert driver.find_element(By.ID, "summary").rect["y"] < 600
    table = driver.find_element(By.ID, "hosts-table").text
    assert "hv-par-01 unreachable" in table and "hv-fra-01 audit failed" in table
    assert driver.find_element(By.ID, "f-count").text == "showing 17 of 17 rows"
    assert not severe(driver)


def test_filters_narrow_the_rows(page):
    driver, _report = page
    all_rows = len(visible(driver, ".item"))
    assert all_rows == 17 and len(visible(driver, "tr.finding")) == 10

    text = driver.find_element(By.ID, "f-text")
    text.send_keys("db-ams")
    rows = visible(driver, ".item")
    assert len(rows) == 3 and all("db-ams-01" in r.get_attribute("data-text") for r in rows)
    assert [s.get_attribute("data-host") for s in visible(driver, "section.host")] == ["hv-ams-01"]
    assert driver.find_element(By.ID, "f-count").text == "showing 3 of 17 rows"

    text.send_keys(" sdb")  # every word must match
    assert len(visible(driver, "tr.finding")) == 1

    driver.find_element(By.ID, "f-clear").click()
    Select(driver.find_element(By.ID, "f-status")).select_by_value("drift")
    assert len(visible(driver, "tr.finding")) == 5 and not visible(driver, ".compliant-domain")
    Select(driver.find_element(By.ID, "f-host")).select_by_value("hv-ams-01")
    assert len(visible(driver, "tr.finding")) == 5
    Select(driver.find_element(By.ID, "f-rule")).select_by_value("alias-missing")
    assert len(visible(driver, "tr.finding")) == 1

    driver.find_element(By.ID, "f-clear").click()
    Select(driver.find_element(By.ID, "f-status")).select_by_value("unreachable")
    rows = visible(driver, ".item")
    assert len(rows) == 1 and rows[0].text.startswith("UNREACHABLE")
    assert [s.get_attribute("data-host") for s in visible(driver, "section.host")] == ["hv-par-01"]

    driver.find_element(By.ID, "f-clear").click()
    Select(driver.find_element(By.ID, "f-host")).select_by_value("hv-ams-02")
    assert len(visible(driver, ".compliant-domain")) == 3 and not visible(driver, "tr.finding")

    driver.find_element(By.ID, "f-clear").click()
    driver.find_element(By.CSS_SELECTOR, "button.chip[data-value='live-differs']").click()
    assert Select(driver.find_element(By.ID, "f-rule")).first_selected_option.text == "live-differs"
    assert len(visible(driver, "tr.finding")) == 2

    driver.find_element(By.ID, "f-clear").click()
    driver.find_element(By.ID, "f-text").send_keys("no such thing anywhere")
    assert not visible(driver, ".item") and driver.find_element(By.ID, "f-none").is_displayed()
    driver.find_element(By.ID, "f-clear").click()
    assert len(visible(driver, ".item")) == 17 and not driver.find_element(By.ID, "f-none").is_displayed()
    assert not severe(driver)


def test_no_console_errors_and_nothing_fetched(page):
    driver, _report = page
    errors = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
    assert errors == []
    # An uncaught error would be SEVERE; prove the log catches one, then that the page made none.
    logs = driver.get_log("browser")
    assert [e for e in logs if e.get("level") == "SEVERE"] == [], logs
    driver.execute_script("setTimeout(function () { throw new Error('virtfleet-canary'); }, 0);")
    driver.execute_script("return new Promise(function (r) { setTimeout(r, 50); });")
    assert any("virtfleet-canary" in e["message"] for e in severe(driver))


def test_screenshot_of_the_whole_page(page, tmp_path):
    driver, _report = page
    # Domains far from the viewport are not laid out (content-visibility: auto); a picture of the
    # whole page needs them all (CSSOM changes are allowed by the page's CSP, style attributes are not).
    driver.execute_script("document.querySelectorAll('details.domain, .compliant-domain')"
                          ".forEach(function (el) { el.style.contentVisibility = 'visible'; });")
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight];")
    assert 2000 < height < 4000  # four hosts, nine domains: one long page, no runaway layout
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path = tmp_path / "report.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 50000
    if os.environ.get("VIRTFLEET_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(str(path), SCREENSHOT)
    assert not severe(driver)


@pytest.fixture(scope="module")
def paged_report(tmp_path_factory):
    """The same fleet written by the role's writer with a page per host (inline limit 5 rows)."""
    from ansible_collections.virtfleet.libvirt.plugins.plugin_utils import _report_files
    fixtures = _load(os.path.join(ROOT, "tests", "unit", "plugins", "filter", "test_report_fixtures.py"), "report_fixtures")
    out = tmp_path_factory.mktemp("report-paged")
    _head, paths = _report_files.write_reports(fixtures.HOSTS, fixtures.fleet_hostvars(), str(out), "compliance",
                                               ["html"], title="Nightly fleet audit", generated_at=GENERATED_AT,
                                               inline_limit=5)
    return paths


def test_paged_report_summary_filters_hosts_and_drills_down(browser, paged_report):
    driver = browser
    driver.get_log("browser")
    driver.get("file://" + paged_report["html"])
    assert driver.title == "Nightly fleet audit"
    assert "17 rows" in driver.find_element(By.ID, "paged-note").text
    rows = visible(driver, "tr.host-row")
    assert [r.get_attribute("data-host") for r in rows] == ["hv-fra-01", "hv-par-01", "hv-ams-01", "hv-ams-02"]
    assert driver.find_element(By.ID, "f-count").text == "showing 4 of 4 rows"
    Select(driver.find_element(By.ID, "f-status")).select_by_value("pending")
    assert [r.get_attribute("data-host") for r in visible(driver, "tr.host-row")] == ["hv-ams-01"]
    driver.find_element(By.ID, "f-clear").click()
    driver.find_element(By.CSS_SELECTOR, "button.chip[data-value='cache-policy']").click()
    assert [r.get_attribute("data-host") for r in visible(driver, "tr.host-row")] == ["hv-fra-01"]
    driver.find_element(By.ID, "f-clear").click()
    driver.find_element(By.ID, "f-text").send_keys("par")
    assert [r.get_attribute("data-host") for r in visible(driver, "tr.host-row")] == ["hv-par-01"]
    driver.find_element(By.ID, "f-clear").click()
    assert not severe(driver)

    # Drill down: the host's own page, every finding with the filters, and back.
    driver.find_element(By.LINK_TEXT, "hv-ams-01").click()
    assert driver.title == "hv-ams-01 · Nightly fleet audit"
    assert driver.find_element(By.ID, "f-count").text == "showing 9 of 9 rows"
    assert len(visible(driver, "tr.finding")) == 8 and len(visible(driver, ".compliant-domain")) == 1
    driver.find_element(By.ID, "f-text").send_keys("7212cdcf sdb")   # the domain's UUID and a device
    assert len(visible(driver, "tr.finding")) == 1
    driver.find_element(By.ID, "f-clear").click()
    Select(driver.find_element(By.ID, "f-rule")).select_by_value("live-differs")
    assert len(visible(driver, "tr.finding")) == 2
    assert driver.execute_script("return performance.getEntriesByType('resource').length;") == 0
    assert not severe(driver)
    driver.find_element(By.PARTIAL_LINK_TEXT, "Nightly fleet audit").click()
    assert driver.find_element(By.ID, "paged-note").is_displayed()
    assert not severe(driver)
