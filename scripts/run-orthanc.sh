#!/usr/bin/env bash
# run-orthanc.sh [CONFIG]: Orthanc in the foreground with the plugin venv (.venv/plugin) on PYTHONPATH.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
config=${1:-$repo/orthanc.json}
site=$("$repo/.venv/plugin/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "==> Orthanc $config (PYTHONPATH=$site); Ctrl-C stops it"
cd "$repo"
PYTHONPATH=$site exec /usr/sbin/Orthanc "$config"
