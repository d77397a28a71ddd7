#!/bin/sh
# Runs as root of fresh mount/net/pid/ipc namespaces, before the worker:
#  - a private, size-capped tmpfs on the work dir (the worker's HOME and TMPDIR);
#  - each folder given with -b becomes an empty tmpfs with only the paths given with -a bound
#    back in (read-only): an allow-list, so a credential file nobody thought of stays out.
#    kopt gives every top-level folder but the system's (/tmp, /var, /work, /opt, /srv, ...:
#    only /usr, /lib*, /bin, /sbin, /etc, /proc, /dev, /sys stay whole), the home folders
#    (/root, /home, its own $HOME) and, for an unprivileged
#    worker, any folder it could not traverse (a 0700 /root holding the python install, a
#    0700 /tmp/pytest-of-root holding a cache); -a names the python install, the venv, the
#    import paths, kopt's package folders, the work dir, the build cache and the files the
#    worker must read (a task);
#  - the worker's own build-cache folder stays writable at its usual path (so cached builds
#    stay valid): with -u, through an id-mapped mount (jailhelp.py idmap), so the host's
#    root-owned files there are the worker's own and nothing on the host changes owner;
#  - with -o UPPER, the cache folder (a repository's tree) is seen through an overlay whose
#    upper layer is UPPER (an empty host folder, allowed and hidden like the others): what a
#    run writes, deletes, renames or chmods lands there, kopt reads what it wrote from there,
#    and nothing of the tree itself (its inodes, times, folder sizes) can move, so no run
#    leaves anything in it for the next (red teams 15-17 kept answers in the ctimes, inode
#    numbers and folder sizes of a tree written in place);
#  - the given paths are hidden; every other mount (/sys included) read-only;
#  - a fresh /proc that shows only this PID namespace, its /proc/sys read-only. Its
#    mountinfo still lists mount points (the allow-listed and hidden paths, by name, never
#    their contents): accepted, a name is all it gives away;
#  - a private /dev/shm; with -d a /dev of only null, zero, full, random, urandom, the fd
#    links and the -g nodes (the GPU's, when a GPU is asked for);
#  - then the worker runs with no capabilities at all and no way to gain any, as -u UID:GID
#    (without -u, kopt's own uid: root in a user namespace owns nothing on the host), under
#    jailhelp.py's seccomp filter with -s (no unix/netlink/vsock sockets, io_uring, keyring).
#   jail.sh [-u UID:GID] [-b DIR]... [-a PATH]... [-d] [-g NODE]... [-p PYTHON] [-s] [-m] [-o UPPER]
#           TMP_MB WORK_DIR CACHE_DIR HIDE... -- COMMAND...
# -m: the mounts only, then exit 0 (no COMMAND): a worker forked from kopt's zygote
# (zygote.py) has them done in its namespaces, then drops privileges itself as the last
# lines here do (jailhelp.py drop_privileges, verified from /proc/self/status).
# A step that fails exits 97 with a `kopt-jail: STEP` line, so the caller learns which one.
set -u
fail() { echo "kopt-jail: $*" >&2; exit 97; }
nl='
'
uid=""; dev=0; seccomp=0; py=""; blanks=""; allows=""; nodes=""; mounts_only=0; overlay=""
while getopts "u:b:a:dg:p:smo:" opt; do
  case $opt in
    u) uid=$OPTARG ;;
    b) blanks="$blanks$OPTARG$nl" ;;
    a) allows="$allows$OPTARG$nl" ;;
    d) dev=1 ;;
    g) nodes="$nodes$OPTARG$nl" ;;
    p) py=$OPTARG ;;
    s) seccomp=1 ;;
    m) mounts_only=1 ;;
    o) overlay=$OPTARG ;;
    *) fail "usage" ;;
  esac
done
shift $((OPTIND - 1))
tmp_mb=$1; work=$2; cache=$3; shift 3
helper=$(cd "$(dirname "$0")" && pwd)/jailhelp.py
owner=""
[ -n "$uid" ] && owner=",uid=${uid%:*},gid=${uid#*:}"
mount -t tmpfs -o "size=${tmp_mb}m,mode=0700$owner" kopt-work "$work" || fail "work dir"
mount -t proc -o nosuid,nodev,noexec,hidepid=0 kopt-proc /proc || fail "proc"
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || fail "proc/sys"
# The stage is named relative to the work dir, which stays the cwd: a blank over a folder
# that holds the work dir (/tmp) hides its path, never the cwd (-c: no canonical paths).
cd "$work" || fail "cd"
stage=.kopt-stage
mkdir -m 0700 "$stage" || fail "stage"

# keep(SRC_ROOT, DST_ROOT, REL): bind SRC_ROOT/REL at DST_ROOT/REL, making the mount point
keep() {
  if [ -d "$1/$3" ]; then mkdir -p "$2/$3" || return 1
  elif [ -e "$1/$3" ]; then
    parent=$2/$3; parent=${parent%/*}
    { [ -d "$parent" ] || mkdir -p "$parent"; } && : > "$2/$3" || return 1
  else return 0; fi
  mount -c --rbind "$1/$3" "$2/$3"
}

i=0
while IFS= read -r b; do
  [ -n "$b" ] && [ -d "$b" ] || continue
  i=$((i + 1)); s=$stage/$i
  mkdir "$s" && mount -c --rbind "$b" "$s" || fail "home: stage $b"
  mount -t tmpfs -o size=1m,mode=0755,nosuid,nodev kopt-home "$b" || fail "home: blank $b"
  while IFS= read -r a; do
    case "$a" in "$b"/*) keep "$s" "$b" "${a#"$b"/}" || fail "home: allow $a" ;; esac
  done <<EOF
$allows
EOF
  umount -c -l "/proc/self/cwd/$s" && rmdir "$s" || fail "home: unstage $b"
done <<EOF
$blanks
EOF

if [ -n "$cache" ] && [ -d "$cache" ]; then
  if [ -n "$uid" ]; then "$py" -I -S "$helper" idmap "$cache" "${uid%:*}" "${uid#*:}" || fail "idmap cache"
  else mount --bind "$cache" "$cache" || fail "cache"; fi
  if [ -n "$overlay" ]; then
    # UPPER/u (made by kopt with the tree's mode: it is the merged root) takes every change,
    # UPPER/w is overlayfs' own. Not id-mapped (overlayfs' own work files are root's): with -u
    # the root is the worker's, as the tree's is through its id-mapped mount, and overlayfs
    # gives what the worker makes there the worker's uid. The overlay holds its own copy of
    # UPPER's mount: the path itself is hidden below (kopt names it to hide), so a run
    # writes there only through the overlay.
    if [ -n "$uid" ]; then chown "$uid" "$overlay/u" || fail "overlay: chown"; fi
    mount --bind "$overlay" "$overlay" || fail "overlay: bind"
    mount -t overlay -o "lowerdir=$cache,upperdir=$overlay/u,workdir=$overlay/w" kopt-tree "$cache" || fail "overlay"
    umount -l "$overlay" || fail "overlay: unstage"
  fi
fi
while [ "$1" != "--" ]; do
  if [ -d "$1" ]; then mount -t tmpfs -o size=4k,ro kopt-hidden "$1" || fail "hide $1"
  elif [ -e "$1" ]; then mount --bind /dev/null "$1" || fail "hide $1"; fi
  shift
done
shift
awk '{print $2}' /proc/self/mounts | sed 's/\\040/ /g' | sort -u | while IFS= read -r m; do
  case "$m" in
    /proc|/proc/*|"$work"|"$cache") ;;
    *) mount -o remount,bind,ro "$m" 2>/dev/null ;;
  esac
done

if [ "$dev" = 1 ]; then
  mkdir "$stage/dev" && mount -c --bind /dev "$stage/dev" || fail "dev: stage"
  mount -t tmpfs -o size=64k,mode=0755,nosuid,noexec kopt-dev /dev || fail "dev: blank"
  while IFS= read -r n; do
    [ -n "$n" ] && { keep "$stage/dev" /dev "${n#/dev/}" || fail "dev: $n"; }
  done <<EOF
null${nl}zero${nl}full${nl}random${nl}urandom${nl}$nodes
EOF
  ln -s /proc/self/fd /dev/fd && ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout && ln -s fd/2 /dev/stderr \
    && mkdir /dev/shm || fail "dev: links"
  umount -c -l "/proc/self/cwd/$stage/dev" && rmdir "$stage/dev" || fail "dev: unstage"
fi
if [ -d /dev/shm ]; then
  mount -t tmpfs -o "size=64m,mode=1777,nosuid,nodev" kopt-shm /dev/shm || fail "/dev/shm"
fi
[ "$dev" = 1 ] && { mount -o remount,bind,ro /dev || fail "dev: read-only"; }
rmdir "$stage" || fail "stage"
cd "$work" || fail "cd"
[ "$mounts_only" = 1 ] && exit 0
[ "$seccomp" = 1 ] && set -- "$py" -I -S "$helper" seccomp -- "$@"
ids=""
[ -n "$uid" ] && ids="--reuid=${uid%:*} --regid=${uid#*:} --clear-groups"
# a new uid clears the parent-death signal `unshare --kill-child` set: set again after it
setpriv --help 2>&1 | grep -q -- --pdeathsig && ids="$ids --pdeathsig SIGKILL"
# shellcheck disable=SC2086 # $ids is a list of options
exec setpriv $ids --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
