#!/bin/sh
# Builds libesp.so.0 from a source tree: this repository or the copy bundled in
# a package (Python sdist, npm tarball), for installs where no prebuilt fits.
#   build-libesp.sh ROOT OUT   (ROOT holds include/ and src/; JOBS=2, CXX=c++)
set -eu
root=$(cd "$1" && pwd)
out=$2
deps_file=$root/c-deps.txt
[ -f "$deps_file" ] || deps_file=$root/packaging/c-deps.txt
deps=$(awk '!/^#/ && NF {print $1}' "$deps_file")
debian=$(awk '!/^#/ && NF {print $2}' "$deps_file")
cxx=${CXX:-c++}
if ! cflags=$(pkg-config --cflags $deps 2>&1) || ! libs=$(pkg-config --libs $deps 2>&1); then
  echo "libesp: building from source needs pkg-config and the development files of: $deps" >&2
  echo "  (Debian/Ubuntu: apt-get install pkg-config $debian). pkg-config said: $cflags" >&2
  exit 1
fi
mkdir -p "$out/obj"
export cxx cflags root out
ls "$root"/src/*.cpp | xargs -P "${JOBS:-2}" -I{} sh -c \
  'f={}; echo "  c++ ${f##*/}"; exec $cxx -std=c++17 -O2 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden \
     -I"$root/include" $cflags -c "$f" -o "$out/obj/$(basename "$f" .cpp).o"'
$cxx -shared -o "$out/libesp.so.0" "$out"/obj/*.o -Wl,-soname,libesp.so.0 \
  -Wl,--version-script,"$root/src/esp.map" -Wl,-z,nodelete -Wl,--no-undefined $libs -pthread
rm -rf "$out/obj"
echo "libesp: built $out/libesp.so.0"
