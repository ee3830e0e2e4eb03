#!/usr/bin/env python3
"""POST /tools/create-dicom: the plugin against Orthanc's core, side by side, in one run.

Starts two Orthanc servers of one leg with the test harness (tests/integration/servers.py):
one without any plugin (the core answers create-dicom) and one with our plugin (it answers
create-dicom). Every case sends the same body to both, alternating core and plugin request by
request, and compares median client-side latencies (plugin / core). A last case compares the
throughput of 4 concurrent clients (a PNG RGB of --throughput-size, 512x512 by default, as issue 26
states it). Targets are printed, never asserted.

    .venv/test/bin/python benchmarks/create_dicom.py [--leg bookworm|forky] [--repeat N] [--json FILE]
"""
import base64
import io
import json
import statistics
import sys
import threading
import time

import numpy as np
import requests
from PIL import Image

from bench import (Failure, abba, concurrently, machine, markdown_table, open_leg, options, report, servers,
                   verdict)

TARGET = 1.10  # plugin / core latency at most this; throughput plugin / core at least 1 / this
WARMUP = 3  # requests per server before a case is timed
CLIENTS = 4  # concurrent clients of the throughput case
ENDPOINT = "/tools/create-dicom"
ENCAPSULATED_JPEG = "jpeg-1024-rgb-encapsulated"
DECODED_JPEG = "jpeg-1024-rgb"


# -- payloads: deterministic, made at start-up ------------------------------------------------

def gradient_rgb(width, height):
    """An RGB image whose channels ramp along x, y and the diagonal."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    r = np.broadcast_to(x, (height, width))
    g = np.broadcast_to(y, (height, width))
    b = (r + g) / 2
    return Image.fromarray(np.stack([r, g, b], axis=-1).round().astype(np.uint8), "RGB")


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def pdf_bytes(size):
    """A PDF of exactly `size` bytes (even): one page and a stream of pseudo-random bytes."""
    head = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n")
    tail = b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    stream_head = b"4 0 obj<</Length %010d>>stream\n"
    n = size - len(head) - len(stream_head % 0) - len(tail)
    data = np.random.RandomState(20240506).randint(0, 256, n, dtype=np.uint8).tobytes()
    pdf = head + stream_head % n + data + tail
    assert len(pdf) == size and pdf.startswith(b"%PDF-")
    return pdf


def kib(data):
    return f"{len(data) / 1024:.1f} KiB"


def data_uri(mime, data):
    return "data:%s;base64,%s" % (mime, base64.b64encode(data).decode("ascii"))


def make_cases(repeat):
    """[(name, label, JSON body bytes, timed repeats)], largest payloads with fewer repeats."""
    few = max(3, repeat // 4)
    jpeg = encoded(gradient_rgb(1024, 1024), "JPEG", quality=90)
    cases = []
    for size, n in ((64, repeat), (512, repeat), (2048, few)):
        png = encoded(gradient_rgb(size, size), "PNG")
        cases.append((f"png-{size}-rgb", f"PNG RGB {size}x{size} ({kib(png)})",
                      {"Content": data_uri("image/png", png)}, n))
    cases.append((DECODED_JPEG, f"JPEG RGB 1024x1024 decoded ({kib(jpeg)})",
                  {"Content": data_uri("image/jpeg", jpeg)}, repeat))
    cases.append((ENCAPSULATED_JPEG, "JPEG RGB 1024x1024, Encapsulate",
                  {"Content": data_uri("image/jpeg", jpeg), "Encapsulate": True}, repeat))
    cases.append(("pdf-1mb", "PDF 1 MiB",
                  {"Content": data_uri("application/pdf", pdf_bytes(1 << 20))}, few))
    out = []
    for name, label, body, n in cases:
        body = {"Tags": {"PatientName": "Benchmark^" + name, "StudyDescription": "create-dicom benchmark"},
                **body}
        out.append((name, label, json.dumps(body).encode(), n))
    return out


# -- measurement ------------------------------------------------------------------------------

def create(session, server, body):
    """POST create-dicom; return (seconds, instance or series ID). Raises Failure on non-200."""
    start = time.perf_counter()
    answer = session.post(server.url + ENDPOINT, data=body, timeout=120,
                          headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise Failure(f"{server.name}: HTTP {answer.status_code}: {answer.text[:500]}")
    return elapsed, answer.json()["ID"]


def delete(session, server, instance_id):
    # Deleting an instance deletes its series, study and patient once they are empty.
    answer = session.delete(f"{server.url}/instances/{instance_id}", timeout=120)
    if answer.status_code != 200:
        raise Failure(f"{server.name}: DELETE /instances/{instance_id}: HTTP {answer.status_code}")


def latency_case(servers, body, repeat):
    """Alternate core and plugin (ABBA order), warm-up first; return {role: [seconds]}."""
    times = {role: [] for role in servers}
    for i, role in abba(servers, WARMUP + repeat):
        server, session = servers[role]
        elapsed, instance_id = create(session, server, body)
        delete(session, server, instance_id)  # outside the timed part
        if i >= WARMUP:
            times[role].append(elapsed)
    return times


def throughput_block(server, body, requests_per_client):
    """CLIENTS threads, each its own Session, all starting together; return (req/s, ids)."""
    def client(k, session):
        return [create(session, server, body)[1] for _ in range(requests_per_client)]

    elapsed, ids = concurrently(CLIENTS, client)
    return CLIENTS * requests_per_client / elapsed, [i for part in ids for i in part]


def delete_all(server, ids):
    """Delete instances with CLIENTS threads (between blocks, not timed)."""
    def worker(part):
        with requests.Session() as session:
            for instance_id in part:
                delete(session, server, instance_id)
    threads = [threading.Thread(target=worker, args=(ids[k::CLIENTS],)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def throughput_case(servers, body, rounds, requests_per_client):
    """Alternate core and plugin blocks (ABBA); return {role: [req/s per block]}."""
    rates = {role: [] for role in servers}
    for i, role in abba(servers, 1 + rounds):  # round 0 warms up
        server = servers[role][0]
        rate, ids = throughput_block(server, body, requests_per_client if i else 5)
        delete_all(server, ids)
        if i:
            rates[role].append(rate)
    return rates


# -- report -------------------------------------------------------------------------------------

def table(results, m):
    lines = []
    for r in results["latency"]:
        ratio = r["plugin_ms"] / r["core_ms"]
        lines.append(f"| {r['label']} (n={r['n']}) | {r['core_ms']:.1f} | {r['plugin_ms']:.1f} | "
                     f"{ratio:.3f} | <= {TARGET:.2f} {verdict(ratio <= TARGET)} |")
    t = results["throughput"]
    if t:
        ratio = t["plugin_rps"] / t["core_rps"]
        lines.append(f"| throughput, {CLIENTS} clients, PNG RGB {t['size']}x{t['size']} (req/s, median of {t['rounds']} blocks "
                     f"of {CLIENTS}x{t['requests_per_client']}) | {t['core_rps']:.1f} req/s | "
                     f"{t['plugin_rps']:.1f} req/s | {ratio:.3f} | >= {1 / TARGET:.2f} "
                     f"{verdict(ratio >= 1 / TARGET)} |")
    c = results.get("compared")
    if t and c:
        ratio = c["compared_rps"] / t["core_rps"]
        lines.append(f"| the same, plugin with {json.dumps(m.get('compare_config'))} (same blocks, alternated) | "
                     f"{t['core_rps']:.1f} req/s | {c['compared_rps']:.1f} req/s | {ratio:.3f} | >= {1 / TARGET:.2f} "
                     f"{verdict(ratio >= 1 / TARGET)} |")
    by_name = {r["name"]: r for r in results["latency"]}
    enc, dec = by_name.get(ENCAPSULATED_JPEG), by_name.get(DECODED_JPEG)
    if enc and dec:
        ratio = enc["plugin_ms"] / dec["core_ms"]
        lines.append(f"| JPEG 1024x1024: plugin encapsulated / core decoded | {dec['core_ms']:.1f} | "
                     f"{enc['plugin_ms']:.1f} | {ratio:.3f} | < 1.00 {verdict(ratio < 1)} |")
    return markdown_table("core median ms", "plugin median ms", lines, m)


def add_options(parser):
    parser.add_argument("--repeat", type=int, default=100,
                        help="timed requests per server and case (a quarter, at least 3, for "
                             "PNG 2048x2048 and the PDF); default %(default)s")
    parser.add_argument("--rounds", type=int, default=5,
                        help="throughput blocks per server; default %(default)s")
    parser.add_argument("--per-client", type=int, default=100,
                        help="requests per client in one throughput block; default %(default)s")
    parser.add_argument("--throughput-size", type=int, default=512,
                        help="side of the PNG RGB of the throughput case; default %(default)s")
    parser.add_argument("--only", help="comma list of case names to run (throughput: 'throughput')")
    parser.add_argument("--plugin-config", metavar="JSON", type=json.loads, default=None,
                        help='merged over the plugin server\'s configuration, e.g. \'{"Python": {"AllowThreads": true}}\'')
    parser.add_argument("--compare-config", metavar="JSON", type=json.loads, default=None,
                        help="a third server, the plugin with this configuration merged, in the throughput case's "
                             "alternation (e.g. '{\"AdvancedRest\": {\"LoopbackStoreShare\": 0}}': the SDK's store)")


def main():
    args = options(__doc__, add_options)
    leg = open_leg(args.leg)
    began = time.monotonic()
    print("building payloads ...", file=sys.stderr)
    cases = make_cases(args.repeat)
    side = args.throughput_size
    png = encoded(gradient_rgb(side, side), "PNG")
    small = json.dumps({"Tags": {"PatientName": "Benchmark^throughput", "StudyDescription": "create-dicom benchmark"},
                        "Content": data_uri("image/png", png)}).encode()
    only = set(args.only.split(",")) if args.only else None
    if only:
        cases = [c for c in cases if c[0] in only]

    print(f"starting Orthanc ({leg.name}) with and without the plugin ...", file=sys.stderr)
    specs = [("core", {"plugin": False}), ("plugin", {"plugin": True, "config": args.plugin_config})]
    if args.compare_config is not None:
        specs.append(("compared", {"plugin": True, "config": args.compare_config}))
    with servers(leg, *specs) as started:
        core, plugin = started[:2]
        m = machine(leg, core, plugin)
        m.update(plugin_config=args.plugin_config, compare_config=args.compare_config)
        roles = [spec[0] for spec in specs]
        sessions = {role: (server, requests.Session()) for role, server in zip(roles, started)}

        results = {"machine": m, "target": TARGET, "warmup": WARMUP, "latency": [], "throughput": None}
        pair = {role: sessions[role] for role in ("core", "plugin")}  # the latency cases: these two
        for name, label, body, n in cases:
            t0 = time.monotonic()
            times = latency_case(pair, body, n)
            results["latency"].append({
                "name": name, "label": label, "n": n, "body_bytes": len(body),
                "core_ms": 1000 * statistics.median(times["core"]),
                "plugin_ms": 1000 * statistics.median(times["plugin"]),
                "core_s": times["core"], "plugin_s": times["plugin"],
            })
            r = results["latency"][-1]
            print(f"  {name}: core {r['core_ms']:.1f} ms, plugin {r['plugin_ms']:.1f} ms "
                  f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        if not only or "throughput" in only:
            t0 = time.monotonic()
            rates = throughput_case(sessions, small, args.rounds, args.per_client)
            if "compared" in rates:
                results["compared"] = {"compared_rps": statistics.median(rates["compared"]),
                                       "compared_rps_blocks": rates["compared"]}
            results["throughput"] = {
                "clients": CLIENTS, "size": side, "rounds": args.rounds, "requests_per_client": args.per_client,
                "core_rps": statistics.median(rates["core"]), "plugin_rps": statistics.median(rates["plugin"]),
                "core_rps_blocks": rates["core"], "plugin_rps_blocks": rates["plugin"],
            }
            print(f"  throughput: core {results['throughput']['core_rps']:.1f}/s, plugin "
                  f"{results['throughput']['plugin_rps']:.1f}/s ({time.monotonic() - t0:.0f} s)",
                  file=sys.stderr)
        for _, session in sessions.values():
            session.close()

    report(results, began, table(results, m), args.json)


if __name__ == "__main__":
    main()
