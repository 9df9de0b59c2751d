#!/usr/bin/env bash
# End-to-end check of the demo, as CI runs it: make demo AUTO_SIGN=1, make demo-failure, make demo-stop,
# then nothing of the demo may be left running. Prints "N passed, N failed" and exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  local started=$SECONDS
  if "$@" > ".demo-test-$name.log" 2>&1; then
    passed=$((passed + 1)); echo "PASSED $name ($((SECONDS - started)) s)"
  else
    failed=$((failed + 1)); echo "FAILED $name ($((SECONDS - started)) s); last lines:"; tail -25 ".demo-test-$name.log"
  fi
}
leftovers() {
  ! pgrep -af "govcloud-cutover-demo-|prefect server start --host 127.0.0.1 --port 4200|prefect worker start --pool cutover-process"
}
check demo make demo AUTO_SIGN=1
check demo-failure make demo-failure
# demo-failure says what the rollback carries back before the rollback starts
check divergence-shown-before-rollback grep -q "before any rollback: this rollback carries back" .demo-test-demo-failure.log
check demo-stop make demo-stop
sleep 1
check no-process-left leftovers
# The production topology: Prefect server and ledger on PostgreSQL, two cutover workers in one pool.
check demo-production make demo AUTO_SIGN=1 DEMO_TOPOLOGY=production
check demo-production-stop make demo-stop DEMO_TOPOLOGY=production
sleep 1
check no-process-left-production leftovers
rm -f .demo-test-*.log
echo "demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
