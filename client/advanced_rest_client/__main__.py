"""The `advanced-rest` command: follow, wait for and list the jobs of an Orthanc with the plugin.

Exit status: 0 the job ended in Success (or the list was printed), 1 it ended in Failure,
2 `--timeout` passed first (or the command line is wrong), 3 the server could not be asked.
"""
import argparse
import json
import sys

import requests

from . import Client, JobTimeout, monitor

EXIT_SUCCESS, EXIT_FAILURE, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 3


def _names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def parser():
    """The command line: global connection options, then one of monitor, wait, jobs."""
    top = argparse.ArgumentParser(prog="advanced-rest", description=__doc__.split("\n")[0],
                                  epilog=__doc__.split("\n\n", 1)[1].strip())
    top.add_argument("--url", default="http://localhost:8042", help="Orthanc's address (default: %(default)s)")
    top.add_argument("--user", help="HTTP Basic user")
    top.add_argument("--password", help="HTTP Basic password")
    top.add_argument("--root", default="/advanced-rest", help="the plugin's Root (default: %(default)s)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    watch = commands.add_parser("monitor", help="show a job's progress until it ends")
    watch.add_argument("job_id", metavar="JOB")
    watch.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 2)")
    wait = commands.add_parser("wait", help="wait for a job to end and print its JSON")
    wait.add_argument("job_id", metavar="JOB")
    wait.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 2)")
    listing = commands.add_parser("jobs", help="print the jobs (ids, or whole jobs with --expand) as JSON")
    listing.add_argument("--state", type=_names, default=[], metavar="S1,S2",
                         help="only jobs in these states (Pending, Running, Success, Failure, Paused, Retry)")
    listing.add_argument("--type", type=_names, default=[], metavar="T1,T2", help="only jobs of these types")
    listing.add_argument("--expand", action="store_true", help="whole jobs rather than their ids")
    return top


def _print_json(value):
    print(json.dumps(value, indent=2, sort_keys=True))


def main(argv=None, session=None):
    """Run the command line `argv`; its exit status."""
    args = parser().parse_args(argv)
    client = Client(args.url, args.user, args.password, args.root, session=session)
    try:
        if args.command == "jobs":
            _print_json(client.jobs(args.state, args.type, args.expand))
            return EXIT_SUCCESS
        if args.command == "wait":
            job = client.wait_for_job(args.job_id, args.timeout)
            _print_json(job)
        else:
            job = monitor(client, args.job_id, args.timeout)
    except JobTimeout as error:
        print("\ntimed out: %s" % error, file=sys.stderr)
        return EXIT_TIMEOUT
    except requests.RequestException as error:
        print("%s: %s" % (args.url, error), file=sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_SUCCESS if job["State"] == "Success" else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
