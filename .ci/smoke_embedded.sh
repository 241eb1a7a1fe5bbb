#!/usr/bin/env bash
# Smoke test of the embedded default (SQLite, no Redis, filesystem broker), as `make run` has it:
# migrate, seed, start web + worker + beat from the Procfile, then wait for /health/ready to answer
# 200, the admin login page to render, and beat's heartbeat to be executed by the worker.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
PORT=${SMOKE_PORT:-8765}
VAR=$(mktemp -d)
LOG="$VAR/honcho.log"
export KONTOR_VAR_DIR="$VAR" DJANGO_SETTINGS_MODULE=config.settings.local PATH="$PWD/.venv/bin:$PATH"
unset DATABASE_URL REDIS_URL CELERY_BROKER_URL CELERY_RESULT_BACKEND

fail() { echo "smoke: FAILED: $*"; echo "---- last log lines ----"; tail -n 40 "$LOG" 2>/dev/null || true; exit 1; }

$PY manage.py migrate --noinput >/dev/null
# Written to a file, not piped: `| head` closes the pipe early and the command dies of SIGPIPE.
$PY manage.py seed_demo >"$VAR/seed.log"
head -n 1 "$VAR/seed.log"
# Backups work on the embedded default too: back up the seeded books and verify the copy (row
# counts, ledger chain heads, every hash chain).
$PY manage.py backup_database --output-dir "$VAR/backups" >"$VAR/backup.log" || fail "backup_database"
$PY manage.py restore_database --verify "$(ls -1 "$VAR"/backups/kontor-*.sqlite3 | tail -n 1)" \
  >"$VAR/verify.log" || { cat "$VAR/verify.log"; fail "restore_database --verify"; }
tail -n 1 "$VAR/verify.log"

setsid env WEB_BIND="127.0.0.1:$PORT" WEB_CONCURRENCY=2 honcho start --no-prefix -f Procfile >"$LOG" 2>&1 &
HONCHO=$!
cleanup() { kill -TERM -- "-$HONCHO" 2>/dev/null || true; wait "$HONCHO" 2>/dev/null || true; rm -rf "$VAR"; }
trap cleanup EXIT

status=""
for _ in $(seq 1 60); do
  status=$(curl -s -o "$VAR/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)
  [ "$status" = "200" ] && break
  sleep 1
done
[ "$status" = "200" ] || fail "/health/ready answered '$status'"
echo "smoke: /health/ready 200 $(cat "$VAR/ready.json")"

login=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/admin/login/")
[ "$login" = "200" ] || fail "/admin/login/ answered $login"
echo "smoke: /admin/login/ 200"

beats=0
for _ in $(seq 1 90); do
  beats=$($PY manage.py shell -c "from core.models import ServiceHeartbeat as H; h = H.objects.filter(name='celery').first(); print(h.beats if h else 0)" 2>/dev/null | tail -n 1)
  [ "${beats:-0}" -ge 1 ] 2>/dev/null && break
  sleep 2
done
[ "${beats:-0}" -ge 1 ] 2>/dev/null || fail "no worker heartbeat from beat within 180 s"
echo "smoke: beat scheduled the heartbeat and the worker ran it ($beats beat(s))"
echo "smoke: embedded default OK"
