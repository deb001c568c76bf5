# Shared by the scripts: a local SecantusDB for development, pinned tools.
# Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
TEST_VENV="$LOCAL/test-venv"

log() { printf '%s\n' "$*" >&2; }

python_bin() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  log "error: Python 3 is required to run the local database (SecantusDB)."
  return 1
}

# ensure_venv DIR REQUIREMENTS WHAT: a virtualenv at DIR with exactly the
# pinned REQUIREMENTS, rebuilt only when that file changes.
ensure_venv() {
  local dir="$1" requirements="$2" what="$3"
  local stamp="$dir/.requirements.sha256"
  local wanted
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return 0
  fi
  log "Installing $what into ${dir#"$ROOT/"} ..."
  mkdir -p "$LOCAL"
  rm -rf "$dir"
  if ! "$(python_bin)" -m venv "$dir"; then
    log "error: could not create a virtualenv; install Python's venv module (Debian: python3-venv)."
    return 1
  fi
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$stamp"
}

# ensure_command COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is
# missing (refreshing the package lists once if the first try fails).
ensure_command() {
  local command="$1" package="$2" sudo=""
  command -v "$command" >/dev/null 2>&1 && return 0
  log "Installing $package from Debian's packages ..."
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q "$package" >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "$package" >/dev/null; }
}

# The npm tools pinned in contract/package-lock.json (Spectral, dclint, the
# SDK generators), installed again only when the lock file changes.
ensure_node_tools() {
  local contract="$ROOT/contract" stamp wanted
  stamp="$contract/node_modules/.package-lock.sha256"
  wanted="$(sha256sum "$contract/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    return 0
  fi
  ensure_command npm npm
  log "Installing the contract's npm tools (contract/package-lock.json) ..."
  (cd "$contract" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$wanted" >"$stamp"
}

# SecantusDB, the local MongoDB-compatible server, in .local/venv.
ensure_db_installed() {
  ensure_venv "$VENV" "$ROOT/scripts/requirements-db.txt" "SecantusDB (a local MongoDB-compatible server)"
}

# listening_port LOG PID [SECONDS]: waits until the process PID writes
# "listening on HOST:PORT" to LOG and prints PORT. Fails if the process exits
# first (for example, its port was taken) or stays silent.
listening_port() {
  local file="$1" pid="$2" tries=$(( ${3:-30} * 10 )) port
  while ((tries > 0)); do
    port="$(grep -m1 -oE 'listening on [^ ]*:[0-9]+' "$file" 2>/dev/null | grep -oE '[0-9]+$' || true)"
    if [[ -n "$port" ]]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
    tries=$((tries - 1))
  done
  return 1
}

# Waits until a MongoDB-protocol server answers ping at $1 (a URI).
wait_for_db() {
  local uri="$1" tries=60
  until "$VENV/bin/python" - "$uri" <<'PY' 2>/dev/null
import sys, pymongo
pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=500).admin.command("ping")
PY
  do
    tries=$((tries - 1))
    if ((tries == 0)); then
      log "error: the local database did not start; its log is $DB_LOG"
      tail -n 20 "$DB_LOG" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

# start_db PORT STORAGE: starts SecantusDB in the background and waits until
# it answers; sets DB_PID and DB_PORT. PORT 0 lets the server pick a free
# port itself, so no other process can take it between choosing and binding.
start_db() {
  local port="$1" storage="$2"
  mkdir -p "$LOCAL"
  DB_LOG="$(mktemp "$LOCAL/secantus-XXXXXX.log")"
  "$VENV/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$storage" \
    --log-level INFO >"$DB_LOG" 2>&1 &
  DB_PID=$!
  if ! DB_PORT="$(listening_port "$DB_LOG" "$DB_PID" 60)"; then
    log "error: the local database did not start on port $port; its log is $DB_LOG"
    tail -n 20 "$DB_LOG" >&2 || true
    return 1
  fi
  wait_for_db "mongodb://127.0.0.1:$DB_PORT/"
}

stop_db() {
  if [[ -n "${DB_PID:-}" ]] && kill -0 "$DB_PID" 2>/dev/null; then
    kill "$DB_PID" 2>/dev/null || true
    wait "$DB_PID" 2>/dev/null || true
    rm -f "${DB_LOG:-}"
  fi
}

# Waits until GET $1 answers 2xx, for up to $2 seconds (default 20).
wait_for_http() {
  local url="$1" seconds="${2:-20}"
  "$(python_bin)" - "$url" "$seconds" <<'PY'
import sys, time, urllib.request
url, deadline = sys.argv[1], time.time() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except Exception:
        if time.time() > deadline:
            sys.exit(1)
        time.sleep(0.2)
PY
}
