#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, only when something is missing.
# Usage: scripts/ensure-debian-packages.sh   (needs root, as on this project's machines)
set -euo pipefail
declare -A need=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh-keygen]=openssh-client
  [/usr/sbin/nginx]=nginx-light
  [/usr/bin/chromium]=chromium
  [/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc]=fonts-noto-cjk
  [/usr/include/mariadb/mysql.h]=libmariadb-dev  # mysqlclient (MariaDB/MySQL verification) builds against it
  [/usr/bin/pkg-config]=pkg-config
)
missing=()
for path in "${!need[@]}"; do
  [ -e "$path" ] || missing+=("${need[$path]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
  echo "could not install ${missing[*]} with apt-get; install them by hand and run the command again" >&2
  exit 1
fi
