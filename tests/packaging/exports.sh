#!/bin/sh
#  exports BUILD SOURCE: libtern.so exports exactly the functions tern.h and
#  the headers it includes (tern_err.h, installed beside it) declare, no more
#  (a private symbol would become ABI) and no fewer (a declaration without
#  TERN_EXPORT would not link against the .so).
set -eu
build=$1
source=$2
lib=$build/lib/libtern.so
header=$source/client/include/tern.h
#  tern.h and each header it includes with quotes (they live in protocol/).
headers=$header
for name in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$header"); do
    [ -f "$source/protocol/$name" ] || { echo "exports: tern.h includes $name, not in protocol/" >&2; exit 1; }
    headers="$headers $source/protocol/$name"
done
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -f "$lib" ] || { echo "exports: no $lib (build the tern target)" >&2; exit 1; }
nm -D --defined-only "$lib" | awk '{ print $NF }' | grep -Ev '^_(init|fini)$' | sort -u \
    > "$tmp/exported"
#  The headers without their comments (the preprocessor removes them, keeping
#  the macros unexpanded and the includes unread); a function is a tern_
#  name followed by "(".
for h in $headers; do
    "$cc" -w -fpreprocessed -dD -E -P "$h"
done | grep -o 'tern_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' | sort -u \
    > "$tmp/declared"

status=0
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then
    echo "exports: libtern.so exports symbols tern.h does not declare:" $extra >&2
    status=1
fi
if [ -n "$missing" ]; then
    echo "exports: tern.h declares functions libtern.so does not export:" $missing >&2
    status=1
fi
[ "$status" -eq 0 ] &&
    echo "exports: $(wc -l < "$tmp/exported") symbols, as declared in" $(basename -a $headers)
exit $status
