# lib.sh - what the bench scripts share (source it; needs BUILD set): a free loopback
# port, and a ternd started on one and waited for.

# port_free PORT: true if nothing listens on TCP PORT.
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# free_port: prints a free loopback TCP port (and the one after it is free too).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$(( 20000 + RANDOM % 30000 ))
        port_free "$p" && port_free $((p + 1)) && { echo "$p"; return 0; }
    done
    echo "no free port" >&2; return 1
}

# launch_ternd DIR [FLAGS...]: starts ternd on a free 127.0.0.1 port with its data in
# DIR/data and its log in DIR/ternd.log, waits until it is ready; sets TERND_PID and
# PORT. Exits the script if ternd does not come up.
launch_ternd() {
    local dir=$1; shift
    PORT=$(free_port)
    mkdir -p "$dir"
    "$BUILD/bin/ternd" --listen "tcp://127.0.0.1:$PORT" --data "$dir/data" --metrics off \
        "$@" >"$dir/ternd.log" 2>&1 &
    TERND_PID=$!
    for _ in $(seq 100); do
        grep -q "ready on" "$dir/ternd.log" 2>/dev/null && return 0
        kill -0 "$TERND_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "ternd did not start:" >&2; cat "$dir/ternd.log" >&2; exit 1
}
