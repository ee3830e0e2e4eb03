#!/usr/bin/env bash
# make-venv.sh VENV REQUIREMENTS [PYTHON]
# Create VENV from PYTHON (default /usr/bin/python3, the one Orthanc embeds on bookworm) and
# install REQUIREMENTS into it. Skipped when the venv was built from the same file and Python;
# the stamp is written last, so a half-built venv is rebuilt.
set -euo pipefail

venv=$1
requirements=$2
python=${3:-/usr/bin/python3}

stamp="$venv/.advanced-rest-stamp"
want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" --version 2>&1)"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "==> venv $venv: up to date ($requirements)"
    exit 0
fi
echo "==> venv $venv: building from $python with $requirements"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$requirements"
echo "$want" > "$stamp"
echo "==> venv $venv: ready"
