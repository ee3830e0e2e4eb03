#!/usr/bin/env python3
"""Webhooks: how soon a receiver hears of a job's end, beside Lua's OnJobSuccess + HttpPost, and how many
events per second one server delivers.

One Orthanc server of one leg with our plugin, started with the test harness (tests/integration/servers.py),
an endpoint (JobSuccess, signed) on a loopback receiver, and the core's own way of telling someone, a Lua
script whose OnJobSuccess POSTs the job's id (fire-and-forget: nothing kept, nothing retried):

1. Latency of core jobs (asynchronous archives of one tiny study): for each job, the receiver's clock when
   the webhook arrives, and when Lua's POST arrives, minus the job's CompletionTime (UTC, same machine).
   p50 and p99 of both, and the ratio of the medians. The plugin learns of a core job's end through
   Orthanc's JOB_SUCCESS event, then reads the job over the loopback and saves the outbox before sending.
2. Latency of plugin jobs (asynchronous create-dicom of one small PNG): webhook arrival minus CompletionTime
   (Lua's OnJobSuccess never fires for them: the core does not know the plugin's jobs).
3. Throughput: with the receiver down, finished plugin jobs fill the outbox (three events each:
   JobSubmitted, JobRunning, JobSuccess); the receiver comes up and the time until every delivery is in
   gives events per second (in order per job, one sender per endpoint).

Figures are printed, never asserted.

    .venv/test/bin/python benchmarks/webhooks.py [--leg bookworm|forky] [--jobs N] [--backlog N] [--json FILE]
"""
import datetime
import json
import os
import statistics
import sys
import time

from bench import columns_table, machine, ok, open_leg, options, report
from servers import Server
from create_dicom_cases import png_data_uri
from webhook_receiver import SECRET, Receiver

ROOT = "/advanced-rest"


def add_options(parser):
    parser.add_argument("--jobs", type=int, default=50, help="jobs timed per latency case (default 50)")
    parser.add_argument("--backlog", type=int, default=200, help="plugin jobs whose events are queued while "
                                                                 "the receiver is down (default 200)")


def completion(text):
    fmt = "%Y%m%dT%H%M%S.%f" if "." in text else "%Y%m%dT%H%M%S"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def arrivals(receiver, path_filter=None):
    """{job id: arrival time} of the JobSuccess webhooks (or Lua posts) received."""
    found = {}
    for item in receiver.received:
        body = item["body"]
        if "Lua" in body:
            if path_filter == "lua":
                found.setdefault(body["Lua"], item["at"])
        elif path_filter != "lua" and body.get("Event") == "JobSuccess":
            found.setdefault(body["Job"]["ID"], item["at"])
    return found


def wait_all(receiver, ids, kind, timeout=120):
    deadline = time.monotonic() + timeout
    while not set(ids) <= set(arrivals(receiver, kind)):
        if time.monotonic() > deadline:
            raise SystemExit("not every %s arrived in %d s" % (kind or "webhook", timeout))
        time.sleep(0.05)
    return arrivals(receiver, kind)


def core_case(server, receiver, jobs):
    stored = ok(server.post("/tools/create-dicom", data=json.dumps(
        {"Tags": {"PatientName": "Bench^Webhooks"}, "Content": png_data_uri("L")})), "create-dicom")
    webhook, lua = [], []
    for _ in range(jobs):
        job = ok(server.post("/studies/%s/archive" % stored["ParentStudy"], data=json.dumps({"Asynchronous": True})),
                 "archive")["ID"]
        done = ok(server.get("/jobs/%s/wait" % job, params={"timeout": 60}), "wait")
        ended = completion(done["CompletionTime"])
        at_webhook = wait_all(receiver, [job], None)[job]
        at_lua = wait_all(receiver, [job], "lua")[job]
        webhook.append(at_webhook - ended)
        lua.append(at_lua - ended)
    return {"webhook": webhook, "lua": lua}


def plugin_case(server, receiver, jobs):
    latencies = []
    for _ in range(jobs):
        job = ok(server.post("/tools/create-dicom", data=json.dumps(
            {"Tags": {}, "Content": png_data_uri("L"), "Asynchronous": True})), "create-dicom")["ID"]
        done = ok(server.get("/jobs/%s/wait" % job, params={"timeout": 60}), "wait")
        latencies.append(wait_all(receiver, [job], None)[job] - completion(done["CompletionTime"]))
    return latencies


def throughput_case(server, receiver, backlog):
    receiver.stop()
    ids = [ok(server.post("/tools/create-dicom", data=json.dumps(
        {"Tags": {}, "Content": png_data_uri("L"), "Asynchronous": True})), "create-dicom")["ID"]
        for _ in range(backlog)]
    for job in ids:
        ok(server.get("/jobs/%s/wait" % job, params={"timeout": 60}), "wait")
    while True:
        pending = ok(server.get(ROOT + "/webhooks/deliveries", params={"state": "pending"}), "list")
        if len(pending["Deliveries"]) >= 3 * backlog:
            break
        time.sleep(0.1)
    before = len(receiver.received)
    began = time.monotonic()
    receiver.start()
    wait_all(receiver, ids, None, timeout=600)
    seconds = time.monotonic() - began
    return {"events": len(receiver.received) - before, "seconds": seconds}


LUA = """function OnJobSuccess(jobId)
  HttpPost("http://127.0.0.1:%d/lua", '{"Lua": "' .. jobId .. '"}')
end
"""


def main():
    args = options(__doc__, add_options)
    leg = open_leg(args.leg)
    began = time.monotonic()
    receiver = Receiver()
    results = {}
    leg.open()
    server = None
    try:
        script = os.path.join(leg.work_dir, "on-job-success.lua")  # inside the leg (the chroot sees it)
        with open(script, "w") as f:
            f.write(LUA % receiver.port)
        config = {"AdvancedRest": {"Webhooks": [{"Url": receiver.url, "Secret": SECRET,
                                                 "Events": ["JobSubmitted", "JobRunning", "JobSuccess"],
                                                 "BackoffSeconds": 0.2, "MaxBackoffSeconds": 1}],
                                   "MaxPendingDeliveries": 100000},
                  "JobsHistorySize": 1000, "LuaScripts": [leg.leg_path(script)]}
        print(f"starting an Orthanc server ({leg.name}) with the plugin, a webhook and a Lua script ...",
              file=sys.stderr)
        server = Server(leg, name=f"{leg.name}-bench-webhooks", config=config)
        m = machine(leg, server, server)
        results["machine"] = m
        results["core"] = core_case(server, receiver, args.jobs)
        print("  core jobs done", file=sys.stderr)
        results["plugin"] = plugin_case(server, receiver, args.jobs)
        print("  plugin jobs done", file=sys.stderr)
        results["throughput"] = throughput_case(server, receiver, args.backlog)
    finally:
        receiver.close()
        if server is not None:
            server.terminate()
            server.close()
        leg.close()
    rows = []
    for name, values in (("core jobs: webhook", results["core"]["webhook"]),
                         ("core jobs: Lua OnJobSuccess + HttpPost", results["core"]["lua"]),
                         ("plugin jobs: webhook", results["plugin"])):
        rows.append("| %s | %.1f | %.1f |" % (name, 1000 * statistics.median(values), 1000 * percentile(values, 0.99)))
    ratio = statistics.median(results["core"]["webhook"]) / statistics.median(results["core"]["lua"])
    t = results["throughput"]
    rows.append("| core jobs, webhook / Lua (medians) | %.1f x | |" % ratio)
    rows.append("| a backlog of %d events delivered in %.1f s | %.0f events/s | |" % (
        t["events"], t["seconds"], t["events"] / t["seconds"]))
    report(results, began, columns_table(["from a job's end to its arrival", "p50 ms", "p99 ms"], rows, m), args.json)


if __name__ == "__main__":
    main()
