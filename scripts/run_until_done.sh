#!/usr/bin/env bash
# Reruns a jaxgen command until it finishes, restarting it whenever it exits 75 (EX_TEMPFAIL).
#
#   scripts/run_until_done.sh [--max-restarts N] [--delay SECONDS] [--] COMMAND [ARGS...]
#   e.g. scripts/run_until_done.sh python -m jaxgen.main --config experiments/... --workdir gs://bucket/run
#
# jaxgen's launcher exits 75 when SIGTERM stopped training after saving a checkpoint (preemption,
# maintenance, a scheduler's stop): the run is unfinished and rerunning the same command resumes it
# bit for bit (README "What survives what", docs/pods.md). Any other status ends the loop with that
# status: 0 finished, 1 non-finite loss, 2 a user error (bad config, workdir held by another trainer,
# disk full), anything else a crash (not retried: rerun by hand after reading the log).
#
# SIGTERM or SIGINT sent to this script is forwarded to COMMAND (which saves and exits 75) and ends
# the loop: a machine that is going away must not start the run again. --max-restarts (default 100)
# bounds the restarts; --delay (default 5 s) waits between them. Each restart is logged on stderr.
set -u

max_restarts=100
delay=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --max-restarts) max_restarts="$2"; shift 2 ;;
    --max-restarts=*) max_restarts="${1#*=}"; shift ;;
    --delay) delay="$2"; shift 2 ;;
    --delay=*) delay="${1#*=}"; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if [[ $# -eq 0 ]]; then
  echo "run_until_done: error: no command given: pass the jaxgen command to run (see --help)." >&2
  exit 2
fi
if ! [[ "$max_restarts" =~ ^[0-9]+$ && "$delay" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "run_until_done: error: --max-restarts takes a whole number and --delay seconds." >&2
  exit 2
fi

EX_TEMPFAIL=75
stopping=0
child=""
forward() {
  stopping=1
  if [[ -n "$child" ]]; then kill -TERM "$child" 2>/dev/null; fi
}
trap forward TERM INT

restarts=0
while true; do
  "$@" &
  child=$!
  status=0
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do  # `wait` returned early for a trapped signal: wait again
    status=0
    wait "$child" || status=$?
  done
  child=""
  if [[ $status -ne $EX_TEMPFAIL ]]; then
    exit "$status"
  fi
  if [[ $stopping -eq 1 ]]; then
    echo "run_until_done: stopped by a signal; the run saved its checkpoint: rerun to resume." >&2
    exit "$status"
  fi
  if [[ $restarts -ge $max_restarts ]]; then
    echo "run_until_done: exit status 75 after $restarts restarts (--max-restarts): giving up; rerun to resume." >&2
    exit "$status"
  fi
  restarts=$((restarts + 1))
  echo "run_until_done: exit status 75 (preempted, resumable): restart $restarts of at most $max_restarts in ${delay} s." >&2
  sleep "$delay" &
  wait $! 2>/dev/null
  if [[ $stopping -eq 1 ]]; then
    echo "run_until_done: stopped by a signal before restarting; rerun to resume." >&2
    exit "$EX_TEMPFAIL"
  fi
done
