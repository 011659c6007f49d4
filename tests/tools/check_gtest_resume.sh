#!/usr/bin/env bash
# tools/gtest-resume.sh against a fake GoogleTest binary (a script speaking its output format):
# when LIMIT_S runs out, the tests that had finished are kept in RESULTS (they were all lost); a
# failing parameterized test (its line ends ", where GetParam() = ...") is FAILED, not CRASHED with
# the binary restarted; a crash inside a test is still CRASHED and the rest run.
# Usage: check_gtest_resume.sh SOURCE_ROOT
set -uo pipefail
root=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/fabric-gtest-resume-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/fake" <<'EOF'
#!/usr/bin/env bash
# Tests S.T1..S.T4 and P/Q.Case/0..1; HANG: a test that sleeps far past any limit; CRASH: a test
# that kills the process.
filter=${1#--gtest_filter=}
neg=""; [[ $filter == *-* ]] && neg=":${filter#*-}:"
status=0
for n in S.T1 S.T2 S.T3 S.T4 P/Q.Case/0 P/Q.Case/1; do
  [[ $neg == *":$n:"* ]] && continue
  echo "[ RUN      ] $n"
  [ "$n" = "${HANG:-}" ] && exec sleep 600
  [ "$n" = "${CRASH:-}" ] && kill -SEGV $$
  if [ "$n" = P/Q.Case/1 ]; then
    echo "bad value"
    echo "[  FAILED  ] $n, where GetParam() = \"bad\" (0 ms)"
    status=1
  else
    echo "[       OK ] $n (0 ms)"
  fi
done
exit "$status"
EOF
chmod +x "$work/fake"
fail=0
expect() {  # expect NAME ACTUAL EXPECTED
  if [ "$2" != "$3" ]; then
    printf 'FAIL %s\n--- got:\n%s\n--- expected:\n%s\n' "$1" "$2" "$3"
    fail=1
  fi
}
run() { bash "$root/tools/gtest-resume.sh" "$work/fake" '*' "$@" "$work/log" "$work/results"; echo "rc=$?"; }

out=$(run 60 20)
expect "a failing parameterized test" "$out
$(cat "$work/results")" "rc=1
OK S.T1
OK S.T2
OK S.T3
OK S.T4
OK P/Q.Case/0
FAILED P/Q.Case/1"
expect "one run, no restart" "$(grep -c '^==== gtest-resume: run' "$work/log")" 1

# The tests before the hanging one finish at once: the outcome does not hang on this machine's load
# (it did with 2-second tests against a 5-second limit, whose deadline counts whole seconds).
out=$(HANG=S.T3 run 6 30)
expect "LIMIT_S runs out" "$out
$(cat "$work/results")" "rc=124
OK S.T1
OK S.T2"

out=$(CRASH=S.T2 run 60 20)
expect "a crash" "$out
$(sed 's/ process ended.*//' "$work/results")" "rc=1
OK S.T1
CRASHED S.T2
OK S.T3
OK S.T4
OK P/Q.Case/0
FAILED P/Q.Case/1"
[ "$fail" = 0 ] && echo "gtest-resume: all cases as expected"
exit "$fail"
