#!/usr/bin/env python3
"""The jobs page ({Root}/ui) with 1,000 jobs in the history and a change every ~10 ms, in headless Chromium.

One Orthanc server of one leg with our plugin (`JobsHistorySize` 1000) is filled with 1,000 finished
core jobs (asynchronous archives of one tiny study), then the page is opened in Debian's chromium
(headless, through Selenium and chromium-driver) and measured while a client submits small plugin jobs
(asynchronous create-dicom of `{"Tags": {}}`, each moving Pending -> Running -> Success) as fast as the
server takes them, for `--seconds`:

- **first drawing**: from the page's load to its counts of the 1,000 jobs (it draws the first 250 rows);
- **latency**: from the client's answer to a submission to the job's row in the page (the browser's
  clock and the client's are the same machine's), median and 95th percentile; target: p95 under 1 s;
- **main thread**: the share of the window the page's main thread was busy (CDP Performance
  `TaskDuration`); target: under 0.5, the page stays responsive;
- **redrawing**: DOM mutation records per job change (a MutationObserver on the table): only what
  changed is touched; target at most 4 (a row's state and progress cells, its order);
- **side by side with polling**: the bytes the page downloaded per minute (its long-polls and the reads
  of new jobs; Resource Timing) against what a page polling `GET {Root}/jobs?expand` every 3 s (as
  Orthanc Explorer 2 does) downloads over the same history; target: ratio at most 0.5.

Targets are printed, never asserted.

    .venv/test/bin/python benchmarks/jobs_page.py [--leg bookworm|forky] [--seconds 20] [--json FILE]
"""
import concurrent.futures
import json
import statistics
import sys
import threading
import time

import requests

from bench import Failure, columns_table, machine, ok, open_leg, options, report, servers, verdict
from jobs import fill_core_history

ROOT = "/advanced-rest"
LATENCY_TARGET = 1.0  # seconds, p95 from a submission's answer to its row
BUSY_TARGET = 0.5  # share of the window
MUTATIONS_TARGET = 4.0  # mutation records per change
BYTES_TARGET = 0.5  # page / polling, bytes per minute
POLL_EVERY = 3.0  # seconds: Orthanc Explorer 2's refresh of /jobs?expand

# Installed in the page once its rows are drawn: when each row appears, and how much the table changes.
OBSERVE = """
window.__bench = {appeared: {}, mutations: 0};
const table = document.querySelector('#jobs tbody');
new MutationObserver((records) => {
  window.__bench.mutations += records.length;
  for (const record of records) for (const node of record.addedNodes) {
    if (node.dataset && node.dataset.id && !(node.dataset.id in window.__bench.appeared)) {
      window.__bench.appeared[node.dataset.id] = performance.timeOrigin + performance.now();
    }
  }
}).observe(table, {childList: true, subtree: true, characterData: true, attributes: true});
"""
COUNTED = "return [...document.querySelectorAll('#counts .count')].reduce((sum, e) => sum + Number(e.textContent), 0);"
BYTES = "return performance.getEntriesByType('resource').reduce((sum, e) => sum + (e.transferSize || 0), 0);"


def add_options(parser):
    parser.add_argument("--history", type=int, default=1000, help="finished core jobs in the history")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured window")


def browser():
    """Headless chromium through chromium-driver (Debian's, never downloaded)."""
    try:
        from selenium import webdriver
    except ImportError as error:
        raise Failure("selenium is not installed (tests/requirements.txt): %s" % error)
    chrome = webdriver.ChromeOptions()
    chrome.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        chrome.add_argument(argument)
    return webdriver.Chrome(options=chrome, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))


def until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise Failure("timed out: %s" % what)


def busy_seconds(driver):
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def load(server, seconds, stop):
    """Submit plugin jobs one after the other until `stop`; [(job id, wall clock of the answer)]."""
    session = requests.Session()
    session.auth = server.session.auth
    submitted = []
    body = json.dumps({"Tags": {}, "Asynchronous": True})
    while not stop.is_set():
        answer = session.post(server.url + ROOT + "/tools/create-dicom", data=body, timeout=30)
        if answer.status_code == 503:  # MaxPendingJobs: the server is behind, let it catch up
            time.sleep(0.05)
            continue
        submitted.append((ok(answer, "submit")["ID"], time.time()))
    return submitted


def page_case(server, history, seconds):
    driver = browser()
    try:
        driver.execute_cdp_cmd("Performance.enable", {})
        began = time.monotonic()
        driver.get(server.url + ROOT + "/ui/index.html")
        until(lambda: driver.execute_script(COUNTED) >= history, 120, "the page counting %d jobs" % history)
        first = time.monotonic() - began
        driver.execute_script(OBSERVE)
        last_before = server.get(ROOT + "/jobs/changes", params={"since": 2 ** 53, "timeout": 0}).json()["Last"]
        bytes_before, busy_before = driver.execute_script(BYTES), busy_seconds(driver)
        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            submitting = pool.submit(load, server, seconds, stop)
            window_began = time.monotonic()
            time.sleep(seconds)
            stop.set()
            submitted = submitting.result()
        window = time.monotonic() - window_began
        last_id = submitted[-1][0]
        until(lambda: driver.execute_script("return window.__bench.appeared[arguments[0]]", last_id), 30,
              "the last job's row")
        busy = busy_seconds(driver) - busy_before
        page_bytes = driver.execute_script(BYTES) - bytes_before
        bench = driver.execute_script("return window.__bench")
        last_after = server.get(ROOT + "/jobs/changes", params={"since": 2 ** 53, "timeout": 0}).json()["Last"]
    finally:
        driver.quit()
    changes = last_after - last_before
    latencies = sorted(bench["appeared"][job] / 1000.0 - answered for job, answered in submitted
                       if job in bench["appeared"])
    if len(latencies) < len(submitted) * 0.9:
        raise Failure("only %d of %d submitted jobs appeared in the page" % (len(latencies), len(submitted)))
    return {"first_s": first, "jobs": len(submitted), "changes": changes, "window_s": window,
            "changes_per_s": changes / window, "latency_p50_s": statistics.median(latencies),
            "latency_p95_s": latencies[int(0.95 * (len(latencies) - 1))], "busy_share": busy / window,
            "mutations_per_change": bench["mutations"] / max(changes, 1),
            "page_bytes_per_min": page_bytes * 60.0 / window}


def polling_bytes_per_min(server):
    """What polling GET {Root}/jobs?expand every POLL_EVERY s downloads per minute over this history."""
    sizes = [len(server.get(ROOT + "/jobs", params={"expand": ""}).content) for _ in range(3)]
    return statistics.median(sizes) * 60.0 / POLL_EVERY


def table(results, m):
    r = results["page"]
    rows = [
        "| first drawing, %d jobs | %.2f s | | | |" % (results["history"], r["first_s"]),
        "| changes during the window | %.0f /s (%d jobs in %.0f s) | | | |" % (r["changes_per_s"], r["jobs"],
                                                                         r["window_s"]),
        "| submission -> row, p50 / p95 | %.0f / %.0f ms | | | p95 < %.0f ms: %s |" % (
            r["latency_p50_s"] * 1000, r["latency_p95_s"] * 1000, LATENCY_TARGET * 1000,
            verdict(r["latency_p95_s"] < LATENCY_TARGET)),
        "| main thread busy | %.2f of the window | | | < %.1f: %s |" % (r["busy_share"], BUSY_TARGET,
                                                                       verdict(r["busy_share"] < BUSY_TARGET)),
        "| DOM mutation records per change | %.2f | | | <= %.0f: %s |" % (
            r["mutations_per_change"], MUTATIONS_TARGET, verdict(r["mutations_per_change"] <= MUTATIONS_TARGET)),
        "| bytes per minute: page / polling /jobs?expand every 3 s | %.0f KiB | %.0f KiB | %.3f | <= %.1f: %s |" % (
            r["page_bytes_per_min"] / 1024, results["polling_bytes_per_min"] / 1024,
            r["page_bytes_per_min"] / results["polling_bytes_per_min"], BYTES_TARGET,
            verdict(r["page_bytes_per_min"] / results["polling_bytes_per_min"] <= BYTES_TARGET)),
    ]
    return columns_table(["case", "page", "polling", "ratio", "target"], rows, m)


def main():
    args = options(__doc__, add_options)
    leg = open_leg(args.leg)
    began = time.monotonic()
    config = {"JobsHistorySize": args.history, "AdvancedRest": {"JobsHistorySize": args.history}}
    results = {"history": args.history, "config": config}
    print(f"starting an Orthanc server ({leg.name}) with the plugin ...", file=sys.stderr)
    with servers(leg, ("page", {"plugin": True, "config": config})) as (server,):
        m = machine(leg, server, server)
        results["machine"] = m
        seconds = fill_core_history(server, args.history)
        print(f"  {args.history} core jobs finished in {seconds:.1f} s", file=sys.stderr)
        results["polling_bytes_per_min"] = polling_bytes_per_min(server)
        results["page"] = page_case(server, args.history, args.seconds)
    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
