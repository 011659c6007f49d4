#!/usr/bin/env bash
# Installs fabric's build dependencies from Debian 12 packages and fetches the Jane Austen corpus
# package (unpacked into data/janeaustenr/; tools/build.sh turns it into data/austen.txt).
# Idempotent and silent when everything is already there; works as root on a minimal Debian.
#   env: FABRIC_SKIP_DEPS=1 skips the apt part (for non-Debian systems with the deps at hand).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=$root/data

required=(build-essential cmake g++ pkg-config zlib1g-dev
  libgloo-dev libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libeigen3-dev
  libopenmpi-dev openmpi-bin libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev)
optional=(dataset-fashion-mnist)     # Fashion-MNIST for the image examples; never fatal
corpus_pkg=r-cran-janeaustenr         # only downloaded and unpacked: installing it pulls in R
rdb_in_deb=usr/lib/R/site-library/janeaustenr/data/Rdata.rdb
corpus_rdb=$data/janeaustenr/$rdb_in_deb
optional_marker=$data/.optional-unavailable   # remembers an optional package apt could not find

log() { echo "install-deps: $*" >&2; }

as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then as_root=(sudo); else as_root=(false); fi
fi
apt_get() {
  if [ "${as_root[0]:-}" = false ]; then
    log "not root and no sudo: cannot run apt-get $*"
    return 1
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get -q "$@" </dev/null
}

missing_from() {  # prints the packages among "$@" that dpkg does not report as installed
  local p
  for p in "$@"; do  # one status line per installed architecture
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || echo "$p"
  done
}

updated=0
apt_update() {
  [ $updated = 1 ] && return 0
  log "apt-get update"
  apt_get update -qq >/dev/null
  updated=1
}

if [ "${FABRIC_SKIP_DEPS:-0}" = 1 ]; then
  :
elif ! command -v dpkg-query >/dev/null 2>&1; then
  log "no dpkg here: not a Debian system, so install these packages' equivalents yourself:"
  log "  ${required[*]}"
else
  mapfile -t missing < <(missing_from "${required[@]}")
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_update
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    mapfile -t still < <(missing_from "${required[@]}")
    if [ ${#still[@]} -gt 0 ]; then
      log "still missing after apt-get install: ${still[*]}"
      exit 1
    fi
  fi
  if [ ! -f "$optional_marker" ]; then
    mapfile -t missing < <(missing_from "${optional[@]}")
    if [ ${#missing[@]} -gt 0 ]; then
      log "installing optional ${missing[*]}"
      if ! { apt_update && apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
        log "optional ${missing[*]} unavailable; continuing without (delete $optional_marker to retry)"
        mkdir -p "$data" && echo "${missing[*]}" >"$optional_marker"
      fi
    fi
  fi
fi

# The corpus: fetch the .deb and unpack it, without installing it. Skipped once either the text or
# the unpacked package exists.
if [ ! -s "$data/austen.txt" ] && [ ! -f "$corpus_rdb" ]; then
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    log "no apt-get/dpkg-deb: cannot fetch $corpus_pkg; the demo needs data/austen.txt"
  else
    log "fetching $corpus_pkg (the Jane Austen corpus) into data/janeaustenr/"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # As root, apt drops to the _apt user, which cannot write a private temp dir: keep it root.
    sandbox=(); [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    download() { (cd "$tmp" && apt-get -q "${sandbox[@]}" download "$corpus_pkg" </dev/null >/dev/null 2>&1); }
    if ! download; then
      # A machine whose packages are all present may never have run apt-get update.
      if [ "${FABRIC_SKIP_DEPS:-0}" != 1 ] && apt_update && download; then :; else
        log "apt-get download $corpus_pkg failed"
        exit 1
      fi
    fi
    mkdir -p "$data"
    rm -rf "$data/janeaustenr.partial"
    dpkg-deb -x "$tmp"/"$corpus_pkg"_*.deb "$data/janeaustenr.partial"
    [ -f "$data/janeaustenr.partial/$rdb_in_deb" ] || { log "$corpus_pkg has no Rdata.rdb"; exit 1; }
    rm -rf "$data/janeaustenr"
    mv "$data/janeaustenr.partial" "$data/janeaustenr"
  fi
fi
