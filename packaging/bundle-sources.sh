#!/bin/sh
# Copies what building libesp needs (header, sources, dependency list, build
# script, LICENSE) into DEST for a package that ships sources: generated at
# package time from this tree, never kept by hand. `--check DEST` verifies an
# existing copy is identical to what would be generated now.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
fill() {
  mkdir -p "$1/include" "$1/src"
  cp "$here/include/esp.h" "$1/include/"
  cp "$here"/src/*.cpp "$here"/src/*.h "$here/src/esp.map" "$1/src/"
  cp "$here/packaging/c-deps.txt" "$here/packaging/build-libesp.sh" "$here/LICENSE" "$1/"
}
if [ "$1" = --check ]; then
  fresh=$(mktemp -d)
  fill "$fresh"
  diff -r "$fresh" "$2" >&2 || { rm -rf "$fresh"; echo "$2 differs from src/ and include/: regenerate it" >&2; exit 1; }
  rm -rf "$fresh"
else
  rm -rf "$1/include" "$1/src"
  fill "$1"
fi
