#!/usr/bin/env bash
# tests/tools/run_tests.sh: runs tests side by side. Each test writes to a log file of its
# own, printed whole with the test's time when the test ends; at the end come the failed
# tests, the number of test cases the logs report, and a closing line
# "NAME: N passed, N failed" (N tests).
#
#   run_tests.sh [-j JOBS] [-n NAME] [-d LOGDIR] [-t SECONDS] [-s SUMMARY] TEST...
#
# A TEST is "LABEL=COMMAND" (COMMAND runs under bash -c with this environment, its exit
# status its verdict), or "LABEL@DEP=COMMAND": it starts once the test labelled DEP has
# passed (e.g. a build), and fails unrun if DEP failed. Tests start in the order given,
# JOBS at a time (default $TEST_JOBS, else 3): put the long ones first.
# A test still running after SECONDS (default 900) is stopped and fails. SUMMARY, when
# given, gets a line per test: "LABEL passed|failed SECONDS".
# Most tests' policies are fixed windows of 1 h, which roll over at the top of the hour
# (every unit given back), so a test that counts exactly must not run across it: no test
# starts in the last HOUR_GUARD seconds (default 90) of an hour; those running finish,
# and the others start once the hour has turned.
#
# Cases counted from the logs: Check's "Checks: N", pytest's "N passed", the "ok " lines
# of the shell tests.
set -u
jobs_max=${TEST_JOBS:-3} name=tests logdir= limit=900 summary=
while getopts j:n:d:t:s: opt; do
    case $opt in
    j) jobs_max=$OPTARG ;;
    n) name=$OPTARG ;;
    d) logdir=$OPTARG ;;
    t) limit=$OPTARG ;;
    s) summary=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$logdir" ]; then
    logdir=$(mktemp -d "${TMPDIR:-/tmp}/rlimitd-tests-XXXXXX")
fi
mkdir -p "$logdir"

declare -A label_of=() start_of=() log_of=()
passed=0 failed_list=() checks=0 ok_lines=0 pytest_cases=0

# Prints the log of the test that ran as PID, with its verdict RC and time.
report() {
    local pid=$1 rc=$2 label log secs verdict n
    label=${label_of[$pid]} log=${log_of[$pid]}
    secs=$(awk -v a="${start_of[$pid]}" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
    unset "label_of[$pid]" "start_of[$pid]" "log_of[$pid]"
    if [ "$rc" = 0 ]; then verdict=passed; else verdict="FAILED (exit $rc)"; fi
    echo "---- $label"
    cat "$log"
    echo "---- $label: $verdict in ${secs}s"
    done_of[$label]=$((rc != 0))
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
    else
        failed_list+=("$label (exit $rc, log $log)")
    fi
    [ -n "$summary" ] && echo "$label ${verdict%% *} $secs" >>"$summary"
    n=$(sed -n 's/.*Checks: \([0-9]*\), Failures.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')
    checks=$((checks + n))
    ok_lines=$((ok_lines + $(grep -c '^ok ' "$log")))
    n=$(sed -n 's/^\([0-9]*\) passed.* in [0-9.]*s.*/\1/p; s/^=* \([0-9]*\) passed.*/\1/p' "$log" |
        awk '{s += $1} END {print s + 0}')
    pytest_cases=$((pytest_cases + n))
}

# Waits for one running test to end and reports it.
reap() {
    local pid rc
    wait -n -p pid
    rc=$?
    report "$pid" "$rc"
}

declare -A done_of=() # label -> 0 (passed) or 1 (failed), once ended
hour_guard=${HOUR_GUARD:-90}
near_hour() { ((3600 - EPOCHSECONDS % 3600 <= hour_guard)); }
trap 'kill -TERM "${!label_of[@]}" 2>/dev/null; exit 130' INT TERM

# Starts the test at index I of pending (its dependency has passed).
start_test() {
    local test=$1 label command log
    label=${test%%=*} command=${test#*=}
    label=${label%@*}
    log="$logdir/$(printf '%s' "$label" | tr -c 'A-Za-z0-9_.-' '_').log"
    timeout -k 10 "$limit" bash -c "$command" >"$log" 2>&1 </dev/null &
    label_of[$!]=$label start_of[$!]=$EPOCHREALTIME log_of[$!]=$log
}

# Sets dep to the dependency of TEST: empty, or the label after "@".
dep_of() {
    local head=${1%%=*}
    dep=
    [ "$head" != "${head%@*}" ] && dep=${head#*@}
}

pending=("$@")
while [ ${#pending[@]} -gt 0 ] || [ ${#label_of[@]} -gt 0 ]; do
    rest=()
    for test in "${pending[@]}"; do
        dep_of "$test"
        if [ -n "$dep" ] && [ "${done_of[$dep]:-}" = 1 ]; then
            label=${test%%=*}
            echo "---- ${label%@*}: FAILED, not run: $dep failed"
            failed_list+=("${label%@*} (not run: $dep failed)")
            done_of[${label%@*}]=1
            [ -n "$summary" ] && echo "${label%@*} FAILED 0" >>"$summary"
        elif [ ${#label_of[@]} -lt "$jobs_max" ] && { [ -z "$dep" ] || [ "${done_of[$dep]:-}" = 0 ]; } &&
            ! near_hour; then
            start_test "$test"
        else
            rest+=("$test")
        fi
    done
    pending=("${rest[@]}")
    if [ ${#label_of[@]} -eq 0 ] && [ ${#pending[@]} -gt 0 ] && near_hour; then
        echo "$name: waiting for the top of the hour ($((3600 - EPOCHSECONDS % 3600)) s)"
        sleep $((3600 - EPOCHSECONDS % 3600 + 1))
        continue
    fi
    if [ ${#label_of[@]} -eq 0 ] && [ ${#pending[@]} -gt 0 ]; then
        for test in "${pending[@]}"; do # their dependency is no test of this run
            dep_of "$test"
            failed_list+=("${test%%=*} (not run: no test $dep)")
        done
        break
    fi
    [ ${#label_of[@]} -gt 0 ] && reap
done

echo "$name: test cases in the logs: $checks Check checks, $pytest_cases pytest tests," \
    "$ok_lines shell ok lines"
if [ ${#failed_list[@]} -gt 0 ]; then
    echo "$name: failed:"
    printf '  %s\n' "${failed_list[@]}"
fi
echo "$name: $passed passed, ${#failed_list[@]} failed"
[ ${#failed_list[@]} -eq 0 ]
