#!/usr/bin/env bash
# Runs a GoogleTest binary to the end even when one of its tests kills the process, hangs, or
# leaves the CUDA context broken, so that one bad kernel does not hide every test after it (used by
# tools/gpu-check.sh on a GPU machine, where a fault cannot be investigated afterwards):
#  - a crash (the process dies inside a test) or a hang (no output for STALL_S seconds) marks that
#    test CRASHED or HUNG and starts the binary again on the tests that had not finished;
#  - a test that fails with a sticky CUDA error (an illegal address, a launch failure, a device
#    assert: the context is unusable afterwards) is kept as FAILED, and the tests that ran after it
#    in the same process run again in a fresh one, since their failures may be its consequence.
#   usage: tools/gtest-resume.sh BINARY FILTER LIMIT_S STALL_S LOG RESULTS
#     FILTER   a --gtest_filter value (POSITIVE[-NEGATIVE]); the tests already settled are added to
#              its negative part on each restart
#     LIMIT_S  seconds for all the runs together; what has not run by then is missing
#     LOG      every run's output, one after the other
#     RESULTS  one line per test: OK, FAILED, SKIPPED, CRASHED or HUNG, the name, then a note
#   exit: 0 when every test ran and none failed, 1 otherwise, 124 when LIMIT_S ran out
set -uo pipefail

[ $# -eq 6 ] || { echo "usage: $0 BINARY FILTER LIMIT_S STALL_S LOG RESULTS" >&2; exit 2; }
binary=$1 filter=$2 limit=$3 stall=$4 log=$5 results=$6
deadline=$(($(date +%s) + limit))
sticky='cudaError(IllegalAddress|LaunchFailure|MisalignedAddress|IllegalInstruction|Assert|HardwareStackError|InvalidPc|LaunchTimeout|InvalidAddressSpace|ECCUncorrectable)|illegal memory access|unspecified launch failure'
positive=${filter%%-*}
negative=
[[ $filter == *-* ]] && negative=${filter#*-}
: >"$log"
: >"$results"
part=$(mktemp)
trap 'rm -f "$part"' EXIT

# Runs the binary once on "$1" (a filter) into $part; prints "rc" or "hung".
run_once() {
  local left=$((deadline - $(date +%s)))
  [ "$left" -ge 1 ] || { echo 124; return; }
  timeout "$left" "$binary" --gtest_filter="$1" >"$part" 2>&1 &
  local pid=$! now age
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    now=$(date +%s)
    age=$((now - $(stat -c %Y "$part")))
    if [ "$age" -ge "$stall" ] && kill -0 "$pid" 2>/dev/null; then
      pkill -KILL -P "$pid" 2>/dev/null
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      echo hung
      return
    fi
  done
  wait "$pid"
  echo $?
}

status=0
for attempt in $(seq 1 40); do
  rc=$(run_once "$positive${negative:+-$negative}")
  {
    echo "==== gtest-resume: run $attempt of $(basename "$binary"), exit $rc ===="
    cat "$part"
  } >>"$log"
  # The tests this run started, in order, and how each ended ("" while it had not ended). A
  # parameterized or typed test's line ends ", where GetParam() = ..." / ", where TypeParam = ...".
  mapfile -t started < <(sed -n 's/^\[ RUN      \] //p' "$part")
  declare -A ended=()
  while read -r verdict name; do ended[$name]=$verdict; done < <(
    sed -nE 's/^\[ +(OK|FAILED|SKIPPED) +\] ([^ ,]+)(, where .*)? \([0-9]+ ms\)$/\1 \2/p' "$part")
  culprit= culprit_note=
  for name in "${started[@]}"; do
    verdict=${ended[$name]:-}
    # LIMIT_S ran out during this test: it and those after it are missing, those before it kept.
    [ -z "$verdict" ] && [ "$rc" = 124 ] && break
    if [ -z "$verdict" ]; then
      culprit=$name
      if [ "$rc" = hung ]; then
        culprit_note="HUNG $name no output for ${stall}s"
      else
        culprit_note="CRASHED $name process ended with status $rc: $(tail -n 3 "$part" | tr '\n' ' ' | cut -c1-200)"
      fi
      break
    fi
    # Its own failure text: the lines between its RUN and its FAILED line.
    if [ "$verdict" = FAILED ] && awk -v n="$name" '$0 == "[ RUN      ] " n {on = 1}
        on {print} on && (index($0, "[  FAILED  ] " n " (") == 1 || index($0, "[  FAILED  ] " n ", where") == 1) {exit}' \
        "$part" | grep -qE "$sticky"; then
      culprit=$name
      culprit_note="FAILED $name sticky CUDA error: the tests after it in that process run again"
      break
    fi
    echo "$verdict $name" >>"$results"
    negative+=${negative:+:}$name
  done
  unset ended
  [ "$rc" = 124 ] && { status=124; break; }
  if [ -z "$culprit" ]; then
    [ "$rc" = 0 ] || status=1
    # Ended without a culprit: either all ran, or the binary stopped outside a test (its setup, or
    # its exit after the last one).
    if [ "$rc" != 0 ] && [ ${#started[@]} -eq 0 ]; then
      echo "FAILED $(basename "$binary") exited $rc before any test" >>"$results"
    elif [ "$rc" != 0 ] && ! grep -q '^\[  FAILED  \]' "$part"; then
      echo "FAILED $(basename "$binary") exited $rc after its tests: $(tail -n 3 "$part" | tr '\n' ' ' | cut -c1-200)" >>"$results"
    fi
    break
  fi
  status=1
  echo "$culprit_note" >>"$results"
  negative+=${negative:+:}$culprit
done
exit "$status"
