#!/bin/bash
# Installs the Debian packages actx builds, tests and benchmarks with, when
# any is missing (so a second run costs nothing and needs no network).
# Works as root or through sudo; never reads standard input.
set -euo pipefail

PKGS=(gcc scons swig python3-dev python3-cffi python3-pytest pkg-config
      libuv1-dev libglib2.0-dev libevent-dev python3-uvloop spin
      liburing-dev doxygen valgrind python3-venv python3-setuptools
      python3-wheel python3-mypy python3-matplotlib clang-format)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update </dev/null
$sudo apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
