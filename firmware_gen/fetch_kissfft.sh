#!/usr/bin/env bash
# Print a folder holding kissfft's implementation files (kiss_fft.c, _kiss_fft_guts.h,
# tools/kiss_fftr.c) for the device micro frontend, fetching them once from Debian's kissfft
# source package into the user cache. For trees that ship kissfft's headers only (such as
# ../shared/tflm); a TFLM checkout built with its own Makefile has them already.
#
#   export KISSFFT_ROOT=$(firmware_gen/fetch_kissfft.sh)
#
# Debian's kissfft is 131.1.0, TFLM pins v130: on real clips both give the same device features
# (README, "On-target measurement"). Exit 1 with a message on stderr when it cannot be fetched.
set -euo pipefail
dest="${XDG_CACHE_HOME:-$HOME/.cache}/tfkws/kissfft-debian"
if [ ! -f "$dest/tools/kiss_fftr.c" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp" "$dest.part"' EXIT
  . /etc/os-release
  mkdir -p "$tmp/parts" "$tmp/lists/partial"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "${VERSION_CODENAME:?not a Debian system}" > "$tmp/parts/src.sources"
  # A private source list and list folder: the system's apt configuration is left untouched.
  apt_src=(-o Dir::Etc::SourceParts="$tmp/parts" -o Dir::Etc::SourceList=/dev/null
           -o Dir::State::Lists="$tmp/lists")
  if ! { apt-get "${apt_src[@]}" update -qq \
         && (cd "$tmp" && apt-get "${apt_src[@]}" source --download-only -qq kissfft) \
         && tar xzf "$tmp"/kissfft_*.orig.tar.gz -C "$tmp"; } >/dev/null 2>&1; then
    echo "fetch_kissfft: could not fetch Debian's kissfft source package" >&2
    exit 1
  fi
  src=$(ls -d "$tmp"/kissfft-*/)
  mkdir -p "$dest.part/tools"
  cp "$src"/*.c "$src"/*.h "$src"/COPYING "$dest.part/"
  cp "$src"/kiss_fftr.c "$src"/kiss_fftr.h "$dest.part/tools/"
  rm -rf "$dest"
  mv "$dest.part" "$dest"
fi
echo "$dest"
