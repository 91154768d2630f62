# Confine a command to a minimal file system (run by bench/llm/sandbox.py under
# `unshare -rnmpf`: new user, network, mount and pid namespaces).
# Usage: sh sandbox_confine.sh NEWROOT WORKDIR READ_DIRS COMMAND...
#   READ_DIRS: colon-separated directories (the Python installation, /usr) mounted read-only.
# Inside NEWROOT only READ_DIRS (read-only), WORKDIR (read-write), a fresh /proc of the sandbox's
# own processes, /tmp and a few device files exist: the rest of the machine is not there, so
# nothing can read or write it, whatever library the program uses.
set -eu
new=$1; work=$2; dirs=$3; shift 3
mount -t tmpfs -o size=16m,mode=755 tmpfs "$new"
IFS=:
for dir in $dirs; do
  [ -d "$dir" ] || continue
  mkdir -p "$new$dir"
  mount --rbind "$dir" "$new$dir"
  mount -o remount,bind,ro "$new$dir"
done
unset IFS
for link in /bin /lib /lib32 /lib64 /sbin; do  # merged-/usr systems link these into /usr
  if [ -L "$link" ]; then ln -s "$(readlink "$link")" "$new$link"; fi
done
mkdir -p "$new/etc" "$new/dev" "$new/proc" "$new/tmp" "$new$work"
for file in /etc/ld.so.cache /dev/null /dev/zero /dev/urandom; do
  [ -e "$file" ] || continue
  touch "$new$file"
  mount --bind "$file" "$new$file"
done
mount --bind "$work" "$new$work"
mount -t proc proc "$new/proc"
exec chroot "$new" "$@"
