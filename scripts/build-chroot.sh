#!/usr/bin/env bash
# build-chroot.sh SUITE: build (once) the Debian chroot of a test leg, then make or refresh its
# plugin venv at /opt/advanced-rest/venv. SUITE is one of
#   trixie  Debian 13 (stable):  Orthanc 1.12.7, Python plugin 5.0, Python 3.13, orthanc-postgresql 5.0
#   forky   Debian testing:      Orthanc 1.13.0, Python plugin 7.1, Python 3.14
# The chroot lives outside the repo: $ADVANCED_REST_<SUITE>, default /var/cache/advanced-rest/<suite>.
# It is built in a temp dir and renamed, so a half-built chroot is never used. On failure the
# reason goes to <dir>.unavailable, which the tests show when they skip the leg.
set -euo pipefail

suite=${1:?usage: build-chroot.sh trixie|forky}
case $suite in
    trixie) release=trixie ;;
    forky) release=testing ;;  # testing is forky; by its alias, as it was built from the start
    *) echo "build-chroot.sh: unknown suite $suite (trixie, forky)" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
var=ADVANCED_REST_${suite^^}
dir=${!var:-/var/cache/advanced-rest/$suite}
mirror=${ADVANCED_REST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
reason_file="$dir.unavailable"

mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
rm -f "$reason_file"

fail() {
    echo "==> $suite: FAILED: $1" >&2
    printf '%s\n' "$1" > "$reason_file"
    exit 1
}

# Unmount whatever a failed debootstrap left mounted (proc, sys...), then delete.
remove_tree() {
    local tree=$1
    { grep -o " $tree/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf --one-file-system "$tree"
}

if [ ! -x "$dir/usr/sbin/Orthanc" ] || [ ! -e "$dir/usr/share/orthanc/plugins/libOrthancPython.so" ]; then
    command -v debootstrap >/dev/null || fail "debootstrap is not installed"
    for stale in "$dir".tmp*; do
        [ -e "$stale" ] || continue
        echo "==> $suite: removing stale $stale"
        remove_tree "$stale"
    done
    [ -e "$dir" ] && { echo "==> $suite: removing incomplete $dir"; remove_tree "$dir"; }
    tmp=$(mktemp -d "$dir.tmp.XXXXXX")
    log="$dir.debootstrap.log"
    echo "==> $suite: debootstrap $release into $tmp (about a minute, 500 MB; log $log)"
    if ! debootstrap --variant=minbase --include=orthanc,orthanc-python,orthanc-postgresql,python3-venv \
            "$release" "$tmp" "$mirror" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        remove_tree "$tmp"
        fail "debootstrap failed: $(tail -n 3 "$log" | tr '\n' ' ')(full log $log)"
    fi
    mv -T "$tmp" "$dir"
    rm -f "$log"
    echo "==> $suite: chroot ready at $dir"
else
    echo "==> $suite: chroot present at $dir"
fi

# pip inside the chroot needs the host's CA bundle and resolver.
mkdir -p "$dir/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$dir/etc/resolv.conf"

# orthanc-postgresql (5.0) for the cluster tests came after the first chroots: add it where missing.
# First from the package lists debootstrap left (they match the chroot's packages), else after an
# update; Valid-Until is not checked, as debootstrap does not, since the mirror may lag behind
# testing's short-lived Release files. policy-rc.d keeps the package's trigger from starting the
# chroot's Orthanc service. A failure only skips the cluster tests (they name the missing .so).
if [ ! -e "$dir/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so" ]; then
    echo "==> $suite: installing orthanc-postgresql into $dir"
    printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    install='apt-get install -y --no-install-recommends orthanc-postgresql'
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        chroot "$dir" sh -c "$install || { apt-get -o Acquire::Check-Valid-Until=false update && $install; }" \
        || echo "==> $suite: orthanc-postgresql could not be installed: the cluster tests will skip on $suite" >&2
    rm -f "$dir/usr/sbin/policy-rc.d"
fi

mkdir -p "$dir/opt/advanced-rest"
cp "$repo/plugin/requirements.txt" "$dir/opt/advanced-rest/requirements.txt"
cp "$repo/scripts/make-venv.sh" "$dir/opt/advanced-rest/make-venv.sh"
# PIP_FIND_LINKS and friends may name host paths: the chroot gets a clean environment.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    chroot "$dir" bash /opt/advanced-rest/make-venv.sh \
        /opt/advanced-rest/venv /opt/advanced-rest/requirements.txt /usr/bin/python3 \
    || fail "could not build the plugin venv inside $dir (pip install -r plugin/requirements.txt)"
