#!/usr/bin/env bash
# Runs one stage of `make test` and prints how long it took: stage.sh NAME COMMAND...
# The times are also appended to $STAGE_TIMES when it is set (.ci/run prints them).
set -uo pipefail
name=$1
shift
echo "=== stage $name"
started=$(date +%s)
"$@"
code=$?
took=$(($(date +%s) - started))
status=$([ $code -eq 0 ] && echo ok || echo "failed ($code)")
printf '=== stage %s: %d min %02d s, %s\n' "$name" $((took / 60)) $((took % 60)) "$status"
if [ -n "${STAGE_TIMES:-}" ]; then
  printf '%-16s %4d s  %s\n' "$name" "$took" "$status" >>"$STAGE_TIMES"
fi
exit $code
