#!/usr/bin/env python3
"""POST /instances: what counting every stored instance costs, core against core + plugin, in one run.

Starts two Orthanc servers of one leg with the test harness (tests/integration/servers.py): one
without any plugin and one with ours (its OnStoredInstance callback counts every instance in
orthanc_instances_received_total). Both store the same 2,000 distinct 64x64 gray DICOM files (made
in memory with pydicom) with 4 concurrent clients, in blocks alternating core and plugin (ABBA)
so that drift hits both; storage is emptied between blocks (DELETE of the one patient, not timed).
Prints the throughput of both and the ratio plugin / core (target at least 0.95), and checks that
the plugin's counter equals the number of instances it stored. Targets are printed, never asserted.

    .venv/test/bin/python benchmarks/ingest.py [--leg bookworm|forky] [--json FILE]
"""
import io
import statistics
import sys
import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from bench import (Failure, abba, concurrently, machine, markdown_table, open_leg, options, report, servers,
                   verdict)

TARGET = 0.95  # plugin / core throughput at least this
CLIENTS = 4  # concurrent clients storing
INSTANCES = 2000  # instances stored in one block
PER_SERIES = 100  # instances in one series (one patient, one study)
WARMUP_INSTANCES = 200  # stored (and deleted) once per server before the timed blocks
SIZE = 64  # rows and columns of every image
MODALITY = "OT"
PATIENT_ID = "BENCH-INGEST"
COUNTER = "orthanc_instances_received"  # family name; the samples are ..._total
OWN_METRICS = "/advanced-rest/metrics"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, as generate_uid() uses


# -- payloads: deterministic, made at start-up ------------------------------------------------

def dicom_files(count, patient_id=PATIENT_ID, patient_name="Benchmark^Ingest"):
    """`count` distinct 64x64 8-bit gray Secondary Capture files (bytes), Modality OT, one patient.

    Every file has its own SOPInstanceUID and pixels; PER_SERIES files share a series, all one study.
    UIDs derive from patient_id and the index, so a run stores the same files each block.
    """
    base = (np.add.outer(np.arange(SIZE), np.arange(SIZE)) * 2).astype(np.uint8)
    study = generate_uid(UID_ROOT, [patient_id, "study"])
    series = [generate_uid(UID_ROOT, [patient_id, "series", str(k)]) for k in range(-(-count // PER_SERIES))]
    files = []
    for i in range(count):
        uid = generate_uid(UID_ROOT, [patient_id, "instance", str(i)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = uid
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series[i // PER_SERIES]
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.StudyDescription = "ingest benchmark"
        ds.Modality = MODALITY
        ds.SeriesNumber = i // PER_SERIES + 1
        ds.InstanceNumber = i % PER_SERIES + 1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = SIZE
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = (base + i % 256).tobytes()  # wraps: distinct pixels for 256 files in a row
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


# -- measurement ------------------------------------------------------------------------------

def store(session, server, data):
    """POST /instances; return the answer's JSON. Raises Failure unless the instance is new."""
    answer = session.post(server.url + "/instances", data=data, timeout=120,
                          headers={"Content-Type": "application/dicom"})
    if answer.status_code != 200:
        raise Failure(f"{server.name}: POST /instances: HTTP {answer.status_code}: {answer.text[:500]}")
    body = answer.json()
    if body.get("Status") != "Success":
        raise Failure(f"{server.name}: POST /instances: {body.get('Status')} (storage not emptied?)")
    return body


def store_all(server, files, clients=CLIENTS):
    """Store `files` with `clients` threads (file k on client k % clients), all starting together.

    Returns (seconds, stored count, patient IDs).
    """
    def client(k, session):
        return {store(session, server, data)["ParentPatient"] for data in files[k::clients]}

    elapsed, patients = concurrently(clients, client)
    return elapsed, len(files), set().union(*patients)


def empty(server, patients):
    """Delete the patients (their studies, series, instances and files); not timed."""
    for patient in patients:
        answer = server.delete(f"/patients/{patient}", timeout=300)
        if answer.status_code != 200:
            raise Failure(f"{server.name}: DELETE /patients/{patient}: HTTP {answer.status_code}")
    left = server.get("/statistics").json().get("CountInstances")
    if left:
        raise Failure(f"{server.name}: {left} instances left after emptying")


def ingest_case(servers, files, rounds):
    """Warm-up, then `rounds` blocks per server alternating core and plugin (ABBA).

    Returns ({role: [req/s per block]}, {role: instances stored in all}, {role: [delete seconds]}).
    """
    rates = {role: [] for role in servers}
    stored = {role: 0 for role in servers}
    deleting = {role: [] for role in servers}
    for i, role in abba(servers, 1 + rounds):  # round 0 warms up
        server = servers[role]
        seconds, count, patients = store_all(server, files if i else files[:WARMUP_INSTANCES])
        stored[role] += count
        t0 = time.perf_counter()
        empty(server, patients)
        if i:
            rates[role].append(count / seconds)
            deleting[role].append(time.perf_counter() - t0)
            print(f"  block {i} {role}: {count / seconds:.1f} instances/s "
                  f"(delete {deleting[role][-1]:.1f} s)", file=sys.stderr)
    return rates, stored, deleting


def counted(server):
    """{(origin, modality, transfer_syntax): value} of orthanc_instances_received_total on the plugin's route."""
    answer = server.get(OWN_METRICS)
    if answer.status_code != 200:
        raise Failure(f"{server.name}: GET {OWN_METRICS}: HTTP {answer.status_code}")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        if family.name == COUNTER:
            for sample in family.samples:
                if sample.name == COUNTER + "_total":
                    labels = sample.labels
                    found[(labels.get("origin"), labels.get("modality"), labels.get("transfer_syntax"))] = sample.value
    return found


# -- report -------------------------------------------------------------------------------------

def table(results, m):
    t = results["throughput"]
    ratio = t["plugin_rps"] / t["core_rps"]
    lines = [f"| POST /instances, {t['clients']} clients, {t['instances']} distinct {SIZE}x{SIZE} 8-bit gray files "
             f"({t['file_kib']:.1f} KiB each; median of {t['rounds']} blocks per server, ABBA) | "
             f"{t['core_rps']:.1f} req/s | {t['plugin_rps']:.1f} req/s | {ratio:.3f} | >= {TARGET:.2f} "
             f"{verdict(ratio >= TARGET)} |"]
    c = results["counter"]
    series = ", ".join(f"{{origin={o}, modality={mod}, transfer_syntax={ts}}} {v:.0f}"
                       for (o, mod, ts), v in sorted(c["samples"].items()))
    lines.append(f"| {COUNTER}_total on the plugin server: sum of samples vs instances it stored ({series}) | - | "
                 f"{c['sum']:.0f} / {c['stored']} | - | equal {verdict(c['sum'] == c['stored'])} |")
    return markdown_table("core", "plugin", lines, m)


def add_options(parser):
    parser.add_argument("--instances", type=int, default=INSTANCES,
                        help="distinct instances stored in one block; default %(default)s")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timed blocks per server (after one warm-up block of %d); default %%(default)s"
                        % WARMUP_INSTANCES)


def raw_counter(results):
    """results with the counter's samples as a list (JSON has no tuple keys)."""
    samples = results["counter"]["samples"]
    return dict(results, counter=dict(results["counter"], samples=[
        {"origin": o, "modality": mod, "transfer_syntax": ts, "value": v}
        for (o, mod, ts), v in sorted(samples.items())]))


def main():
    args = options(__doc__, add_options, json_help="write the raw numbers to FILE")
    leg = open_leg(args.leg)
    began = time.monotonic()
    print(f"making {args.instances} DICOM files ...", file=sys.stderr)
    files = dicom_files(args.instances)

    print(f"starting Orthanc ({leg.name}) with and without the plugin ...", file=sys.stderr)
    with servers(leg, ("core", {"plugin": False}), ("plugin", {"plugin": True})) as (core, plugin):
        m = machine(leg, core, plugin)

        t0 = time.monotonic()
        rates, stored, deleting = ingest_case({"core": core, "plugin": plugin}, files, args.rounds)
        samples = counted(plugin)
        results = {
            "machine": m, "target": TARGET,
            "throughput": {
                "clients": CLIENTS, "instances": len(files), "rounds": args.rounds,
                "warmup_instances": WARMUP_INSTANCES,
                "file_kib": statistics.mean(len(f) for f in files) / 1024,
                "core_rps": statistics.median(rates["core"]), "plugin_rps": statistics.median(rates["plugin"]),
                "core_rps_blocks": rates["core"], "plugin_rps_blocks": rates["plugin"],
                "core_delete_s": deleting["core"], "plugin_delete_s": deleting["plugin"],
            },
            "counter": {"stored": stored["plugin"], "sum": sum(samples.values()), "samples": samples},
        }
        print(f"  ingest: core {results['throughput']['core_rps']:.1f}/s, plugin "
              f"{results['throughput']['plugin_rps']:.1f}/s ({time.monotonic() - t0:.0f} s)", file=sys.stderr)

    report(results, began, table(results, m), args.json, raw=raw_counter)


if __name__ == "__main__":
    main()
