#!/usr/bin/env bash
# docker-postgres.sh: the PostgreSQL and nginx images of the docker leg's cluster, from Debian 12's
# packages, since no registry can be reached here:
#   advanced-rest/bookworm-base:latest  a bookworm rootfs (debootstrap, with postgresql and nginx-light)
#                                       brought in with `docker import`; cached outside the repo in
#                                       $ADVANCED_REST_BOOKWORM (default /var/cache/advanced-rest/bookworm)
#   advanced-rest/postgres:local        docker/postgres/Dockerfile on it
#   advanced-rest/nginx:local           docker/nginx/Dockerfile on it
# Elsewhere both Dockerfiles build on debian:bookworm-slim, or docker/cluster/ uses the official images.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${ADVANCED_REST_BOOKWORM:-/var/cache/advanced-rest/bookworm}
mirror=${ADVANCED_REST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=advanced-rest/bookworm-base:latest

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

if ! docker image inspect "$base" >/dev/null 2>&1; then
    if [ ! -x "$root/usr/sbin/nginx" ] || ! ls "$root"/usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        command -v debootstrap >/dev/null || { echo "==> debootstrap is not installed" >&2; exit 1; }
        rm -rf --one-file-system "$root" "$root".tmp.*
        tmp=$(mktemp -d "$root.tmp.XXXXXX")
        log="$root.debootstrap.log"
        echo "==> bookworm: debootstrap into $tmp (a minute or two, 250 MB; log $log)"
        if ! debootstrap --variant=minbase --include=postgresql,nginx-light bookworm "$tmp" "$mirror" >"$log" 2>&1; then
            tail -n 20 "$log" >&2
            rm -rf --one-file-system "$tmp"
            exit 1
        fi
        mv -T "$tmp" "$root"
        rm -f "$log"
    fi
    echo "==> docker import $root as $base"
    tar -C "$root" --exclude=./tmp/* --exclude=./var/cache/apt/archives/*.deb --exclude=./var/lib/apt/lists/* \
        --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . |
        docker import --change 'CMD ["/bin/bash"]' - "$base"
fi

for name in postgres nginx; do
    echo "==> docker build docker/$name as advanced-rest/$name:local"
    docker build --quiet --build-arg BASE_IMAGE="$base" -t "advanced-rest/$name:local" "$repo/docker/$name" >/dev/null
done
