#!/bin/sh
# Runs as root of fresh mount/net/pid namespaces, before the worker:
#  - a private, size-capped tmpfs on the work dir;
#  - the worker's own build-cache folder stays writable at its usual path (so cached builds
#    stay valid); the given paths are hidden;
#  - every host mount (/sys and /dev included) read-only; a fresh /proc that shows only
#    this PID namespace, its /proc/sys read-only; a private /dev/shm;
#  - then the worker runs with no capabilities at all and no way to gain any (its uid is
#    kept: with every host mount read-only it owns nothing writable, and paths such as a
#    venv under /root stay reachable).
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
    /proc|/proc/*) ;;
    *) mount -o remount,bind,ro "$m" 2>/dev/null ;;
  esac
done
mount -t proc -o nosuid,nodev,noexec,hidepid=0 kopt-proc /proc || exit 97
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
[ -d /dev/shm ] && mount -t tmpfs -o "size=64m,mode=1777" kopt-shm /dev/shm
cd "$work" || exit 97
exec setpriv --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
