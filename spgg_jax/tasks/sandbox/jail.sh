#!/bin/sh
# The jail: run by /bin/sh inside the new mount namespace (as root there) before any interpreter.
#
# Not executed as a file: the runner reads it and runs its text as
#   /bin/sh -c JAIL_SH spgg-jail ROOT BOX SIZE FILES OWNER EXTRA MASK COMMAND...
# ROOT: an empty dir to build the new root on; BOX: the host dir holding the program; SIZE: tmpfs
# size (e.g. 64m) of the root and of /dev/shm each; FILES: inodes the program may create in each;
# OWNER: uid:gid that owns /box ("" = leave it); EXTRA: ':'-separated dirs to show read-only (the
# interpreter's prefix); MASK: ':'-separated library files to hide under /dev/null ("" when the
# pre-exec stage masks them); COMMAND: what to exec in the jail.
#
# It builds a new root on a size- and inode-limited tmpfs: read-only binds of /usr, /etc, the
# /lib* and /bin dirs and the interpreter's prefix, a private /tmp and /dev/shm, a few device
# nodes, a /proc of the new PID namespace only, and a copy of the box at /box; masks the ctypes
# extension files with /dev/null; then pivot_root()s into it and detaches the old root, so the
# host's filesystem is no longer reachable at all (no chroot to break out of).
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
R="$1"; BOX="$2"; SIZE="$3"; FILES="$4"; OWNER="$5"; EXTRA="$6"; MASK="$7"; shift 7
robind() { mkdir -p "$2"; mount --rbind "$1" "$2"; mount -o remount,bind,ro "$2"; }
# + 64 inodes for the jail's own directories and mount points
mount -t tmpfs -o "size=$SIZE,nr_inodes=$((FILES + 64)),mode=755" spgg-jail "$R"
cd "$R"
robind /usr "$R/usr"
robind /etc "$R/etc"
for l in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$l"
  elif [ -d "/$l" ]; then robind "/$l" "$R/$l"; fi
done
IFS=:
for d in $EXTRA; do
  case "$d" in ""|/usr|/usr/*|/etc|/etc/*) ;; *) robind "$d" "$R$d" ;; esac
done
for f in $MASK; do
  if [ -f "$R$f" ]; then mount --bind /dev/null "$R$f"; fi
done
unset IFS
mkdir -p dev/shm proc tmp box .oldroot
chmod 1777 tmp
for d in null zero full random urandom; do : > "dev/$d"; mount --bind "/dev/$d" "dev/$d"; done
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin; ln -s /proc/self/fd/1 dev/stdout; ln -s /proc/self/fd/2 dev/stderr
mount -t tmpfs -o "size=$SIZE,nr_inodes=$FILES,mode=1777,nosuid,nodev" spgg-shm dev/shm
mount -t proc -o nosuid,nodev,noexec proc proc
cp -a "$BOX/." box/
if [ -n "$OWNER" ]; then chown "$OWNER" box; fi
chmod 700 box
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
cd /box
exec "$@"
