"""A real browser for the jobs page's tests: Debian's chromium, headless, driven by Selenium and
chromium-driver (make test-packages installs both).

    browser     function fixture: browser(server, user=None, name="") -> Page, a fresh headless
                chromium (its own profile) sending `server`'s credentials; each Page's screenshot
                is saved to build/test-results/jobs-page-<test>-<leg>[-<name>].png when the test ends
                (passed or not), and the browsers quit.

Credentials: the browser sends an `Authorization: Basic` header on every request (Chrome DevTools'
Network.setExtraHTTPHeaders), as a browser does once its user answered the Basic prompt; never
user:password@ in a URL. Performance logging is on: `Page.requests()` lists every request the page
made (Network.requestWillBeSent), `Page.console()` the console's messages (CSP violations among them).

Where chromium, chromium-driver or Selenium is missing, the test is skipped with the reason; where they
are installed (make test installs them) but chromium does not start, it fails.
"""
import base64
import json
import os
import re
import shutil
import time

import pytest

from servers import REPO

CHROMIUM = os.environ.get("ADVANCED_REST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ADVANCED_REST_CHROMEDRIVER", "/usr/bin/chromedriver")
RESULTS = os.path.join(REPO, "build", "test-results")
ROOT = "/advanced-rest"
PAGE = ROOT + "/ui/index.html"  # {Root}/ui (and {Root}/ui/, the same to Orthanc) redirect there
WIDTH, HEIGHT = 1000, 800
POLL = 0.05  # seconds between two looks at the page while waiting


def unavailable_reason():
    """Why no browser can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (tests/requirements.txt: make test-venv)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not shutil.which(path):
            return f"{path} missing: apt-get install {package} (make test-packages does it)"
    return None


def start_chromium():
    """A headless chromium under chromedriver; skips where none is installed, fails where one is installed
    but does not start (make test installs it: a browser that cannot start there is a fault, not a skip)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no browser: {reason}")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox",  # the tests run as root
                     "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={WIDTH},{HEIGHT}",
                     "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--password-store=basic"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as error:
        pytest.fail(f"chromium is installed but does not start: {str(error).splitlines()[0]}")


class Page:
    """One browser on one server's jobs page; every wait polls the page until a condition holds."""

    def __init__(self, driver, server, auth=None, name=""):
        self.driver = driver
        self.server = server
        self.name = name
        self._requests = []  # every Network.requestWillBeSent URL, in order
        self._console = []
        driver.execute_cdp_cmd("Network.enable", {})
        if auth:
            token = base64.b64encode(("%s:%s" % auth).encode()).decode()
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + token}})

    # -- navigation and scripts ------------------------------------------------------------

    def open(self, path=PAGE, live=True):
        """Load the page (from `server`, or a full URL); with `live`, wait until its feed answered."""
        self.driver.get(path if "://" in path else self.server.url + path)
        if live:
            self.wait_live()
        return self

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, what, timeout=30):
        """Poll `condition()` until it is truthy; return its value. On timeout, fail saying `what`
        and what the page showed."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("%s: not within %g s; the page: %s" % (what, timeout, self.summary()))
            time.sleep(POLL)

    def summary(self):
        """What the page shows, in short, for failure messages."""
        try:
            return json.dumps({"url": self.driver.current_url, "live": self.live(), "message": self.message(),
                               "rows": self.rows()[:20]})
        except Exception as error:  # a page that is not the jobs page
            return "(%s: %s)" % (type(error).__name__, error)

    # -- what the page shows ---------------------------------------------------------------

    def live(self):
        return self.js("return document.body ? document.body.dataset.live : null")

    def wait_live(self, timeout=30):
        return self.wait(lambda: self.live() == "live", "the page live (body[data-live=live])", timeout)

    def message(self):
        return self.js("var m = document.getElementById('message'); return m ? m.textContent : null")

    def rows(self):
        """The rows of table#jobs, in order: dicts of id, state (data-state) and each cell's text."""
        return self.js("""
            var rows = document.querySelectorAll('table#jobs tbody tr');
            return Array.prototype.map.call(rows, function (tr) {
              function text(name) { var c = tr.querySelector('td.' + name); return c ? c.textContent.trim() : null; }
              var bar = tr.querySelector('td.progress progress');
              return {id: tr.dataset.id, state: tr.dataset.state, creationTime: tr.dataset.created || null,
                      type: text('type'), stateText: text('state'),
                      priority: text('priority'), created: text('created'), replica: text('replica'),
                      error: text('error'), progress: bar ? bar.value : null,
                      determinate: bar ? !bar.matches(':indeterminate') : null};
            });""")

    def row(self, job_id):
        """The row of job_id (a dict as in rows()), or None."""
        return next((row for row in self.rows() if row["id"] == job_id), None)

    def wait_row(self, job_id, state=None, timeout=30):
        """Wait until job_id's row is shown (in `state`, a state or a tuple of states, when given)."""
        states = (state,) if isinstance(state, str) else state

        def shown():
            row = self.row(job_id)
            return row if row and (states is None or row["state"] in states) else None
        return self.wait(shown, "row of job %s%s" % (job_id, " in %s" % (states,) if states else ""), timeout)

    def choose(self, css, value):
        """Choose `value` in the <select> `css`, as a user does."""
        from selenium.webdriver.support.ui import Select
        self.wait(lambda: value in [o.get_attribute("value") for o in Select(self.element(css)).options],
                  "option %r in %s" % (value, css))
        Select(self.element(css)).select_by_value(value)

    def figures(self):
        """The headline figures' texts by data-figure name."""
        return self.js("""
            var out = {};
            document.querySelectorAll('#figures [data-figure]').forEach(function (e) {
              out[e.dataset.figure] = e.textContent.trim(); });
            return out;""")

    def counts(self):
        return self.js("""
            var out = {};
            document.querySelectorAll('#counts li[data-state]').forEach(function (li) {
              var c = li.querySelector('.count'); out[li.dataset.state] = c ? c.textContent.trim() : null; });
            return out;""")

    def element(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def click(self, css, what=None, timeout=30):
        """Click the element `css` once it is shown and enabled."""
        from selenium.common.exceptions import WebDriverException

        def clicked():
            try:
                element = self.element(css)
                if not (element.is_displayed() and element.is_enabled()):
                    return False
                element.click()
                return True
            except WebDriverException:  # not there yet, or redrawn meanwhile
                return False
        return self.wait(clicked, what or "click %s" % css, timeout)

    def press_enter(self, css, timeout=30):
        """Focus the element `css` as the keyboard does (it must be focusable) and press Enter."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.keys import Keys

        def pressed():
            try:
                element = self.element(css)
                if element.get_attribute("tabindex") is None:
                    raise AssertionError("%s is not focusable (no tabindex)" % css)
                self.js("arguments[0].focus()", element)
                if not self.js("return document.activeElement === arguments[0]", element):
                    return False
                element.send_keys(Keys.ENTER)
                return True
            except WebDriverException:
                return False
        return self.wait(pressed, "Enter on %s" % css, timeout)

    # -- the job's details -----------------------------------------------------------------

    def open_details(self, job_id, keyboard=False, timeout=30):
        """Click job_id's row (or focus it and press Enter); wait until #details shows it. Returns details()."""
        self.wait_row(job_id, timeout=timeout)
        if keyboard:
            self.press_enter('table#jobs tbody tr[data-id="%s"]' % job_id, timeout)
        else:
            self.click('table#jobs tbody tr[data-id="%s"] td.type' % job_id, "click the row of %s" % job_id, timeout)
        return self.wait(lambda: (lambda d: d if d["shown"] and d["id"] == job_id else None)(self.details()),
                         "#details of %s" % job_id, timeout)

    def details(self):
        return self.js("""
            var d = document.getElementById('details');
            function text(id) { var e = document.getElementById(id); return e ? e.textContent : null; }
            var buttons = document.querySelectorAll('#details-actions button[data-action]');
            return {shown: !!d && !d.hidden && d.offsetParent !== null, id: (text('details-id') || '').trim(),
                    json: text('details-json'), error: text('details-error'), retry: text('details-retry'),
                    creator: text('details-creator'),
                    actions: Array.prototype.map.call(buttons, function (b) { return b.dataset.action; })};""")

    def act(self, action, timeout=30):
        """Click the details' button of `action` (cancel, pause, resume, resubmit, delete)."""
        self.click('#details-actions button[data-action="%s"]' % action, "the %s button of #details" % action,
                   timeout)

    # -- webhook deliveries ----------------------------------------------------------------

    def deliveries(self):
        """None while section#webhooks is hidden, else its rows: dicts of id, event, job, state, attempts."""
        return self.js("""
            var section = document.getElementById('webhooks');
            if (!section || section.hidden) return null;
            var rows = document.querySelectorAll('table#deliveries tbody tr');
            return Array.prototype.map.call(rows, function (tr) {
              function text(name) { var c = tr.querySelector('td.' + name); return c ? c.textContent.trim() : null; }
              return {id: tr.dataset.id, event: text('event'), job: text('job'), state: text('state'),
                      attempts: text('attempts'), lastError: text('last-error'),
                      redeliver: !!tr.querySelector('button[data-action=redeliver]')};
            });""")

    # -- the browser's logs ----------------------------------------------------------------

    def _drain(self):
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self._requests.append(message["params"]["request"]["url"])
        self._console += self.driver.get_log("browser")

    def requests(self):
        """Every URL the page requested so far (main frame, assets, fetches), in order."""
        self._drain()
        return list(self._requests)

    def console(self):
        """The console's messages so far (dicts with level, message)."""
        self._drain()
        return list(self._console)

    # -- screenshots -----------------------------------------------------------------------

    def screenshot(self, path, width=None):
        """Save a PNG of the window (scaled down to `width` pixels, palette-compressed, when given)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.driver.save_screenshot(path)
        if width:
            from PIL import Image
            with Image.open(path) as image:
                image.load()
            if image.width > width:
                image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
            image.convert("RGB").quantize(colors=128).save(path, optimize=True)
        return path


class Browsers:
    """The browser fixture: starts Pages, saves their screenshots and quits them at the end."""

    def __init__(self, test_name, leg_name):
        self.base = "jobs-page-%s-%s" % (_slug(re.sub(r"^test_|\[.*$", "", test_name)), _slug(leg_name))
        params = re.search(r"\[(.*)\]$", test_name)  # ids other than the leg's: cross-site-...
        extra = [part for part in (params.group(1).split("-") if params else []) if part != leg_name]
        if extra:
            self.base += "-" + _slug("-".join(extra))
        self.pages = []

    def __call__(self, server, user=None, name=""):
        """A Page on `server` with the credentials of `user` ((name, password)), else the server's."""
        auth = user if user is not None else getattr(server.session, "auth", None)
        page = Page(start_chromium(), server, auth=tuple(auth) if auth else None, name=name)
        self.pages.append(page)
        return page

    def path(self, page):
        return os.path.join(RESULTS, self.base + ("-" + _slug(page.name) if page.name else "") + ".png")

    def close(self):
        for page in self.pages:
            try:
                page.screenshot(self.path(page))
            except Exception as error:  # a browser that died: its test says why
                print("advanced-rest tests: no screenshot of %s: %r" % (page.name or "the page", error))
            finally:
                page.driver.quit()


def _slug(text):
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


@pytest.fixture
def browser(request, leg):
    """browser(server, user=None, name="") -> Page: a headless chromium with server's credentials."""
    browsers = Browsers(request.node.name, leg.name)
    yield browsers
    browsers.close()
