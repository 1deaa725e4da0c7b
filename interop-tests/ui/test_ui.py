"""Headless-Chromium test of Warren's management web UI (Warren only).

This test is for Warren's UI (Warren only): RabbitMQ serves its own, different UI at `/`. During
development it ran against a small proxy serving management/ui/* in front of RabbitMQ's API.

Environment:
  MGMT_URL        management HTTP base URL serving the UI and /api (default http://127.0.0.1:15672)
  AMQP_URL        credentials are taken from its user/password (default guest/guest)
  UI_SCREENSHOTS  directory for PNG screenshots (default /var/tmp/warren-ui-shots)
  CHROMIUM, CHROMEDRIVER  binaries (default /usr/bin/chromium, /usr/bin/chromedriver)
"""

import os
import urllib.parse
import uuid

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672").rstrip("/")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
_amqp = urllib.parse.urlparse(AMQP_URL)
ADMIN = (urllib.parse.unquote(_amqp.username or "guest"),
         urllib.parse.unquote(_amqp.password or "guest"))
SHOTS = os.environ.get("UI_SCREENSHOTS", "/var/tmp/warren-ui-shots")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 15


@pytest.fixture
def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield d
    finally:
        d.quit()


def css(d, sel):
    return d.find_element(By.CSS_SELECTOR, sel)


def wait(d, cond, msg=""):
    return WebDriverWait(d, WAIT).until(cond, msg)


def visible(d, sel):
    return wait(d, EC.visibility_of_element_located((By.CSS_SELECTOR, sel)), f"{sel} not visible")


def banner(d):
    """The error banner's text if shown (for failure messages)."""
    b = d.find_elements(By.CSS_SELECTOR, ".error-banner")
    return b[0].text if b and b[0].is_displayed() else ""


def no_error(d):
    assert not banner(d), f"error banner shown: {banner(d)}"


def login(d, user, password):
    d.get(MGMT_URL + "/")
    visible(d, "#login-user").clear()
    css(d, "#login-user").send_keys(user)
    css(d, "#login-pass").clear()
    css(d, "#login-pass").send_keys(password)
    css(d, "#login-button").click()


def shoot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name)
    size = d.get_window_size()
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(size["width"], max(size["height"], min(height + 20, 4000)))  # whole page
    try:
        assert d.save_screenshot(path), f"screenshot {path} failed"
    finally:
        d.set_window_size(size["width"], size["height"])
    return path


def tab(d, name, table_id=None):
    css(d, f'nav a[data-tab="{name}"]').click()
    wait(d, EC.url_contains(f"#/{name}"))
    if table_id:  # the table carries data-loaded once the API answer is drawn
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'table#{table_id}[data-loaded="true"]')),
             f"table#{table_id} never loaded; banner: {banner(d)}")


def confirm_click(d, sel):
    """Destructive buttons need a second click while they show 'Click to confirm'."""
    css(d, sel).click()
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, sel + ".confirming")))
    css(d, sel).click()


def notice(d, text):
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#notice"), text),
         f"notice {text!r} not shown; banner: {banner(d)}")


def get_messages(d):
    """Clicks Get messages and waits for the result list to be redrawn; returns the payloads."""
    results = css(d, "#get-results")
    before = results.get_attribute("data-seq")
    css(d, "#get-button").click()
    wait(d, lambda _: results.get_attribute("data-seq") != before,
         f"Get messages gave no result; banner: {banner(d)}")
    return [p.text for p in results.find_elements(By.CSS_SELECTOR, ".message-payload")], results.text


def test_wrong_password_shows_login_failed(driver):
    login(driver, ADMIN[0], ADMIN[1] + "-wrong")
    err = visible(driver, "#login-error")
    assert "Login failed" in err.text
    assert not css(driver, "#app").is_displayed()
    assert css(driver, "#login").is_displayed()


def test_queue_lifecycle_through_the_ui(driver):
    d = driver
    login(d, *ADMIN)
    visible(d, "#app")
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#user-name"), ADMIN[0]))
    # Overview: totals filled from /api/overview, node table from /api/nodes.
    visible(d, "#overview")
    wait(d, lambda _: css(d, "#ov-queues").text not in ("", "–"), f"overview not loaded; banner: {banner(d)}")
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, 'table#nodes[data-loaded="true"] tbody tr[data-name]')))
    assert css(d, "#rates-chart").size["height"] > 50
    no_error(d)
    shots = [shoot(d, "overview.png")]

    # Queues: declare a queue through the form and see it listed.
    name = f"wh-ui-{uuid.uuid4().hex[:12]}"
    tab(d, "queues", "queues")
    assert css(d, "#queue-add-vhost").get_attribute("value") == "/"
    css(d, "#queue-add-name").send_keys(name)
    css(d, "#queue-add-args").send_keys("x-max-length=1000")
    css(d, "#queue-add-button").click()
    notice(d, "Queue declared")
    row = f'table#queues tbody tr[data-name="{name}"]'
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, row)), f"{name} not listed; banner: {banner(d)}")
    no_error(d)
    shots.append(shoot(d, "queues.png"))

    # An API error is shown in the banner: redeclare with a different durability.
    css(d, "#queue-add-name").send_keys(name)
    css(d, "#queue-add-durable").click()
    css(d, "#queue-add-button").click()
    wait(d, lambda _: banner(d), "redeclaring with other durability showed no error banner")
    css(d, "#error-close").click()
    wait(d, EC.invisibility_of_element_located((By.CSS_SELECTOR, ".error-banner")))

    # Queue page: publish, get back, purge, delete.
    css(d, row + " a.queue-link").click()
    wait(d, EC.url_contains("#/queues/%2F/" + name))
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#queue-name"), name))
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "table#queue-info"), "x-max-length"))
    payload = f"hello from the UI test {uuid.uuid4().hex[:8]} <b>not bold</b>"
    css(d, "#publish-payload").send_keys(payload)
    css(d, "#publish-button").click()
    notice(d, "Message published")
    no_error(d)
    payloads, _ = get_messages(d)
    assert payloads == [payload]  # text, not markup: the payload's <b> was escaped
    no_error(d)
    shots.append(shoot(d, "queue.png"))

    confirm_click(d, "#purge-button")
    notice(d, "Queue purged")
    payloads, text = get_messages(d)
    assert payloads == [] and "Queue is empty" in text

    confirm_click(d, "#delete-button")
    wait(d, EC.url_contains("#/queues"))
    wait(d, lambda _: d.current_url.endswith("#/queues"))
    notice(d, f"Queue {name} deleted")
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, 'table#queues[data-loaded="true"]')))
    assert not d.find_elements(By.CSS_SELECTOR, row)
    no_error(d)

    # Log out returns to the login form.
    css(d, "#logout-button").click()
    visible(d, "#login-user")

    errors = [e["message"] for e in d.get_log("browser") if "Uncaught" in e["message"]]
    assert not errors, errors
    for path in shots:
        assert os.path.getsize(path) > 0, path
