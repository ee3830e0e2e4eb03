#!/usr/bin/env python3
"""100 frames of 512x512 as one multi-frame instance (the plugin's MultiFrame) against the core's
create-dicom of the same frames as a series: time and peak memory, side by side in one run.

Starts two Orthanc servers of one leg (tests/integration/servers.py): one without any plugin (the core
answers POST /tools/create-dicom, a Content array making a series of N instances) and one with our plugin,
sent the same body with "MultiFrame": true (one instance of N frames). Requests alternate core, plugin,
plugin, core (ABBA), one request per server and round; each request's peak growth of the Orthanc process's
resident memory is watched as benchmarks/memory.py does (VmRSS sampled, VmHWM reset before and read
after). The table gives median seconds and the largest peak growth of each, and plugin/core ratios. Targets are printed, never
asserted: the plugin's one instance at most as slow as the core's series and no more memory.

    .venv/test/bin/python benchmarks/multiframe.py [--leg bookworm|trixie|forky|docker] [--frames 100]
                                                   [--size 512] [--mode RGB|L] [--rounds 6] [--json FILE]
"""
import base64
import io
import json
import statistics
import sys
import time

import numpy as np
import requests
from PIL import Image

from bench import abba, columns_table, machine, open_leg, options, report, servers, verdict
from memory import measure

MB = 1000 * 1000
TARGET = 1.0  # plugin / core, for time and for peak memory


def frames(count, size, mode):
    """`count` PNG data URIs of size x size, each a different picture (a moving gradient over noise)."""
    rng = np.random.RandomState(3)
    y, x = np.mgrid[0:size, 0:size]
    noise = rng.randint(0, 24, (size, size), dtype=np.uint8)
    uris = []
    for index in range(count):
        gray = ((x + y + index * 5) % 256).astype(np.uint8) + noise
        array = gray if mode == "L" else np.dstack([gray, (x * 255 // size).astype(np.uint8), np.roll(gray, index, 0)])
        out = io.BytesIO()
        Image.fromarray(array, mode).save(out, "PNG", compress_level=1)
        uris.append("data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii"))
    return uris


def add_options(parser):
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=512, help="frames are size x size pixels")
    parser.add_argument("--mode", choices=("RGB", "L"), default="RGB")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of one request per server, in ABBA order")


def table(results, m):
    core, plugin = results["core"], results["plugin"]
    rows = []
    for what, key, unit in (("time", "median_seconds", "s"), ("peak memory growth", "max_peak_mb", "MB")):
        ratio = plugin[key] / core[key] if core[key] else float("nan")
        rows.append("| %s (%s) | %.2f | %.2f | %.3f | <= %.2f %s |" % (what, unit, core[key], plugin[key], ratio,
                                                                      TARGET, verdict(ratio <= TARGET)))
    rows.append("| peak growth x body | %.2f | %.2f | - | - |" % (core["max_peak_mb"] * MB / results["body_bytes"],
                                                                 plugin["max_peak_mb"] * MB / results["body_bytes"]))
    return columns_table(["%d frames %dx%d %s, body %.1f MB" % (results["frames"], results["size"], results["size"],
                                                                 results["mode"], results["body_bytes"] / MB),
                          "core: a series", "plugin: one multi-frame instance", "plugin/core", "target"], rows, m)


def main():
    args = options(__doc__, add_options, json_help="write the raw numbers to FILE")
    leg = open_leg(args.leg)
    began = time.monotonic()
    content = frames(args.frames, args.size, args.mode)
    bodies = {"core": json.dumps({"Tags": {"PatientName": "Bench^Series"}, "Content": content}).encode(),
              "plugin": json.dumps({"Tags": {"PatientName": "Bench^MultiFrame"}, "Content": content,
                                    "MultiFrame": True}).encode()}
    del content
    print(f"starting Orthanc ({leg.name}) with and without the plugin ...", file=sys.stderr)
    with servers(leg, ("core", {"plugin": False}), ("plugin", {"plugin": True})) as (core, plugin):
        m = machine(leg, core, plugin)
        sessions = {"core": requests.Session(), "plugin": requests.Session()}
        by_role = {"core": core, "plugin": plugin}
        for role in by_role:  # warm-up: decoders, writer, the first series' database pages
            warm = measure(by_role[role], sessions[role], bodies[role])
            if warm["status"] != 200:
                sys.exit("%s answered HTTP %d: %s" % (role, warm["status"], warm["error"]))
        runs = {"core": [], "plugin": []}
        for _, role in abba(("core", "plugin"), args.rounds):
            result = measure(by_role[role], sessions[role], bodies[role])
            if result["status"] != 200:
                sys.exit("%s answered HTTP %d: %s" % (role, result["status"], result["error"]))
            runs[role].append(result)
            print("  %s: %.2f s, peak +%.0f MB" % (role, result["seconds"], result["peak_growth_mb"]), file=sys.stderr)
        for session in sessions.values():
            session.close()
    results = {"machine": m, "frames": args.frames, "size": args.size, "mode": args.mode,
               "body_bytes": len(bodies["core"]), "runs": runs}
    for role in runs:
        results[role] = {"median_seconds": statistics.median(r["seconds"] for r in runs[role]),
                         "max_peak_mb": max(r["peak_growth_mb"] for r in runs[role])}
    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
