#!/bin/sh
#  install BUILD SOURCE: `make install PREFIX=DIR` (cmake --install BUILD
#  --prefix DIR) gives someone embedding libtern what they need: tern.h and
#  the headers it includes, libtern.so.MAJOR with its links, libtern.a, tern.pc, the man pages, the
#  bash completion and the docs that tools/ternd.service points to. Then
#  client/examples builds with pkg-config alone, against the shared and the
#  static library, and both builds run against the installed ternd.
set -eu
build=$1
source=$2
cc=${CC:-cc}
tmp=$(mktemp -d)
ternd_pid=""
s_cleanup() {
    if [ -n "$ternd_pid" ]; then
        kill "$ternd_pid" 2>/dev/null || true
        wait "$ternd_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap s_cleanup EXIT
s_fail() {
    echo "install: $*" >&2
    exit 1
}
s_exists() {
    [ -e "$1" ] || s_fail "missing $1"
}

prefix=$tmp/prefix
"${CMAKE:-cmake}" --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; s_fail "cmake --install failed"; }

#  pkg-config, found where GNUInstallDirs put it (lib or lib/<triplet>).
pc=$(find "$prefix" -name tern.pc)
[ -n "$pc" ] || s_fail "no tern.pc under $prefix"
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
version=$(pkg-config --modversion tern)
libdir=$(pkg-config --variable=libdir tern)
major=${version%%.*}
case $libdir in "$prefix"/*) ;; *) s_fail "tern.pc names libdir $libdir, not under $prefix" ;; esac

#  The headers: tern.h and the protocol headers it includes, side by side.
for name in tern.h $(sed -n 's/^#include "\(.*\)"$/\1/p' "$source/client/include/tern.h"); do
    s_exists "$prefix/include/$name"
done

#  One version everywhere: tern_version.h (which tern.h includes), the .so's
#  name, tern.pc, --version.
header_version=$(awk '/^#define TERN_VERSION_(MAJOR|MINOR|PATCH) / { v = v sep $3; sep = "." }
                      END { print v }' "$prefix/include/tern_version.h")
[ "$header_version" = "$version" ] ||
    s_fail "tern_version.h says $header_version, tern.pc $version"
[ "$("$prefix/bin/ternctl" --version)" = "ternctl $version" ] || s_fail "ternctl --version"
[ "$("$prefix/bin/ternd" --version)" = "ternd $version" ] || s_fail "ternd --version"

#  The library: libtern.so -> libtern.so.MAJOR -> libtern.so.VERSION.
s_exists "$libdir/libtern.so.$version"
s_exists "$libdir/libtern.a"
[ "$(readlink "$libdir/libtern.so")" = "libtern.so.$major" ] || s_fail "libtern.so link"
[ "$(readlink "$libdir/libtern.so.$major")" = "libtern.so.$version" ] || s_fail "SONAME link"
readelf -d "$libdir/libtern.so.$version" | grep -q "SONAME.*\[libtern.so.$major\]" ||
    s_fail "SONAME is not libtern.so.$major"

#  Man pages, completion, and every Documentation= of the systemd unit (it
#  names the default prefix, /usr/local).
grep -q '^\.TH TERNCTL 1 ' "$prefix/share/man/man1/ternctl.1" || s_fail "ternctl(1)"
grep -q '^\.TH TERND 8 ' "$prefix/share/man/man8/ternd.8" || s_fail "ternd(8)"
s_exists "$prefix/share/bash-completion/completions/ternctl"
for doc in $(sed -n 's/^Documentation=//p' "$source/tools/ternd.service"); do
    case $doc in
        file:///usr/local/*) s_exists "$prefix/${doc#file:///usr/local/}" ;;
        man:*) page=${doc#man:}; name=${page%%(*}; section=${page#*(}; section=${section%)}
               s_exists "$prefix/share/man/man$section/$name.$section" ;;
        *) s_fail "ternd.service: unexpected Documentation=$doc" ;;
    esac
done

#  The example, built with pkg-config only: shared, then static (the lines
#  docs/client.md shows).
example=$source/client/examples/tern_example.c
# shellcheck disable=SC2046
"$cc" -o "$tmp/example_shared" "$example" $(pkg-config --cflags --libs tern) ||
    s_fail "shared build"
# shellcheck disable=SC2046
"$cc" -o "$tmp/example_static" "$example" $(pkg-config --cflags tern) \
    -Wl,-Bstatic -ltern -Wl,-Bdynamic -Wl,--as-needed $(pkg-config --static --libs tern) ||
    s_fail "static build"
LD_LIBRARY_PATH=$libdir ldd "$tmp/example_shared" | grep -q "libtern.so.$major => $libdir/" ||
    s_fail "example_shared does not load $libdir/libtern.so.$major"
if ldd "$tmp/example_static" | grep -q libtern; then
    s_fail "example_static loads libtern.so"
fi

#  Run both against the installed ternd on a port the kernel picks.
"$prefix/bin/ternd" --listen 'tcp://127.0.0.1:*' --metrics off --data "$tmp/data" \
    2> "$tmp/ternd.log" &
ternd_pid=$!
endpoint=""
tries=0
while [ -z "$endpoint" ] && [ $tries -lt 200 ] && kill -0 "$ternd_pid" 2>/dev/null; do
    sleep 0.05
    endpoint=$(sed -n 's/.*ready on \(tcp:[^ ]*\).*/\1/p' "$tmp/ternd.log")
    tries=$((tries + 1))
done
[ -n "$endpoint" ] || { cat "$tmp/ternd.log" >&2; s_fail "ternd did not start"; }
for kind in shared static; do
    LD_LIBRARY_PATH=$libdir "$tmp/example_$kind" "$endpoint" "install.$kind" > "$tmp/$kind.out" ||
        { cat "$tmp/$kind.out" >&2; s_fail "example_$kind failed"; }
    grep -q "received 10 message(s)" "$tmp/$kind.out" || s_fail "example_$kind received"
done
kill "$ternd_pid"
wait "$ternd_pid" || s_fail "ternd exit status $?"
ternd_pid=""
echo "install: tern $version into $prefix: headers, library, tern.pc, man pages, completion," \
    "docs; example built shared and static with pkg-config and run"
