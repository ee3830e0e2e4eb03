#!/usr/bin/env bash
# run-orthanc.sh [CONFIG]: Orthanc in the foreground with the plugin venv (.venv/plugin) on PYTHONPATH.
# Supported: Debian 12 (bookworm: Orthanc 1.10.1, Python plugin 4.0) and Debian 13 (trixie: Orthanc
# 1.12.7, Python plugin 5.0), with Debian's orthanc and orthanc-python packages (make run installs them).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
config=${1:-$repo/orthanc.json}
codename=$( . /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}" ) || codename=
case $codename in
    bookworm|trixie) ;;
    *) echo "==> note: make run is tested on Debian 12 (bookworm) and 13 (trixie), not on '${codename:-unknown}'" ;;
esac
site=$("$repo/.venv/plugin/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "==> Orthanc $config (PYTHONPATH=$site); Ctrl-C stops it"
cd "$repo"
PYTHONPATH=$site exec /usr/sbin/Orthanc "$config"
