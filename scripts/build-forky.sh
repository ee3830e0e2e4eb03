#!/usr/bin/env bash
# The forky leg's chroot (kept for habit and older docs): scripts/build-chroot.sh forky.
exec "$(dirname "$0")/build-chroot.sh" forky "$@"
