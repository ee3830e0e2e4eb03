#!/usr/bin/env bash
# docker-base.sh [IMAGE]: the local base image (no registry here): the forky chroot of the test
# legs (Orthanc 1.13.0, Python plugin 7.1, Python 3.14, as orthancteam/orthanc:26.8.1) brought in
# with `docker import`, without the tests' leftovers. Also fills build/wheelhouse for Python 3.14.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-advanced-rest/forky-base:latest}
root=${ADVANCED_REST_FORKY:-/var/cache/advanced-rest/forky}

# A base imported before the chroot got orthanc-postgresql (the cluster needs it) is imported again.
pg_index=usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so
stale=
if docker image inspect "$image" >/dev/null 2>&1 && [ -e "$root/$pg_index" ] &&
   ! docker run --rm --entrypoint /bin/sh "$image" -c "test -e /$pg_index"; then
  stale=1
fi

if [ -n "$stale" ] || ! docker image inspect "$image" >/dev/null 2>&1; then
  [ -x "$root/usr/sbin/Orthanc" ] || "$repo/scripts/build-chroot.sh" forky
  echo "==> docker import $root as $image"
  # Debian's /etc/orthanc/*.json are replaced by one file with the defaults of the orthancteam
  # image (remote access, authentication, the Python plugin only, storage in /var/lib/orthanc/db):
  # Orthanc refuses a key defined in two files, so the image's own files must not collide.
  conf=$(mktemp -d)
  trap 'rm -rf "$conf"' EXIT
  mkdir -p "$conf/etc/orthanc" "$conf/var/lib/orthanc/db"
  cat > "$conf/etc/orthanc/orthanc.json" <<'JSON'
{
  "Name": "Orthanc",
  "StorageDirectory": "/var/lib/orthanc/db",
  "IndexDirectory": "/var/lib/orthanc/db",
  "HttpPort": 8042,
  "DicomPort": 4242,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "Plugins": ["/usr/share/orthanc/plugins/libOrthancPython.so"]
}
JSON
  tar -C "$root" --exclude=./tmp/* --exclude=./opt/advanced-rest --exclude=./var/cache/apt/archives/*.deb \
      --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* --exclude=./etc/orthanc/*.json -c . \
      -C "$conf" etc/orthanc/orthanc.json var/lib/orthanc/db |
    docker import --change 'CMD ["/usr/sbin/Orthanc", "/etc/orthanc/"]' --change 'EXPOSE 8042 4242' - "$image"
fi

# Wheels of the plugin's dependencies for the image's Python (3.14), so that builds need no network.
wheelhouse=$repo/build/wheelhouse
stamp=$wheelhouse/.requirements
if ! cmp -s "$repo/plugin/requirements.txt" "$stamp" 2>/dev/null; then
  echo "==> wheelhouse for Python 3.14 in $wheelhouse"
  rm -rf "$wheelhouse" && mkdir -p "$wheelhouse"
  "$repo/.venv/test/bin/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
      --python-version 3.14 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -r "$repo/plugin/requirements.txt" -d "$wheelhouse"
  cp "$repo/plugin/requirements.txt" "$stamp"
fi
