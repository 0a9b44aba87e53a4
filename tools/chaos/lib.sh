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
