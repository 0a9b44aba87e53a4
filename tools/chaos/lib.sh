#  lib.sh - shell functions the chaos scripts share (sourced, not run).

#  xdc_run LOG PROGRAM ARG...: runs a test program in a process group of its
#  own with its output in LOG, and prints the lines that report the drill
#  (matching the extended regex XDC_REPORT) and the first failures. An
#  interrupted script stops the test and everything it started (every etcd
#  and ternd dies with it: PR_SET_PDEATHSIG) by that group's id. Sets RC to
#  the test's exit code.
xdc_run() {
    _log=$1
    shift
    set +e
    setsid "$@" >"$_log" 2>&1 &
    _pid=$!
    trap 'kill -TERM -- "-$_pid" 2>/dev/null; wait "$_pid"; exit 130' INT TERM HUP
    wait "$_pid"
    RC=$?
    trap - INT TERM HUP
    set -e
    grep -E "$XDC_REPORT" "$_log" || true
    grep -E '^\[(FAIL|----)\]' "$_log" | head -20 || true
}

#  pid_alive PID: the process exists and is not a zombie (kill -0 succeeds
#  on a zombie and fails on another user's live process).
pid_alive() {
    [ -r "/proc/$1/stat" ] || return 1
    _state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$_state" ] && [ "$_state" != Z ]
}

#  netns_sweep: deletes the network namespaces the tests name tern-PID-*
#  (tests/integration/netns_harness.c) whose process PID is gone: what an
#  interrupted run left. Namespaces of running tests are kept.
netns_sweep() {
    command -v ip >/dev/null || return 0
    for _ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case $_ns in
        tern-*-*) ;;
        *) continue ;;
        esac
        _p=${_ns#tern-}
        _p=${_p%%-*}
        case $_p in
        '' | *[!0-9]*) continue ;;
        esac
        pid_alive "$_p" || ip netns del "$_ns" 2>/dev/null || true
    done
}
