#!/bin/sh
# Runs as root of fresh mount/net/pid namespaces, before the worker. Puts a private,
# size-capped tmpfs on the work dir, keeps the worker's own build-cache folder writable
# (at its usual path, so cached builds stay valid), hides the given paths, makes every
# other host mount read-only, then execs the worker.
#   jail.sh TMP_MB WORK_DIR CACHE_DIR HIDE... -- COMMAND...
set -u
tmp_mb=$1; work=$2; cache=$3; shift 3
hosts=$(awk '{print $2}' /proc/self/mounts | sed 's/\\040/ /g' | sort -u)
mount -t tmpfs -o "size=${tmp_mb}m,mode=0700" kopt-work "$work" || exit 97
if [ -n "$cache" ] && [ -d "$cache" ]; then mount --bind "$cache" "$cache" || exit 97; fi
while [ "$1" != "--" ]; do
  if [ -d "$1" ]; then mount -t tmpfs -o size=4k,ro kopt-hidden "$1" || exit 97
  elif [ -e "$1" ]; then mount --bind /dev/null "$1" || exit 97; fi
  shift
done
shift
echo "$hosts" | while IFS= read -r m; do
  case "$m" in
    /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;;
    *) mount -o remount,bind,ro "$m" 2>/dev/null ;;
  esac
done
[ -d /dev/shm ] && mount -t tmpfs -o size=64m kopt-shm /dev/shm
cd "$work" || exit 97
exec "$@"
