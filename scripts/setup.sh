#!/usr/bin/env bash
# make setup: every step idempotent, each says what it does and skips what is already done.
# Usage: scripts/setup.sh [python|docker|image|compose|llm|refs|browser|postgres|all]...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV=$ROOT/.venv
CACHE=${AUDIOPROBE_CACHE_DIR:-$HOME/.cache/audioprobe}
mkdir -p "$CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "setup: $1 needs root (or install it yourself: $2)" >&2; exit 1; }; }

quiet_pip() {  # this machine's pip config names local index folders that do not exist: drop that noise
  "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

apt_install() {  # apt_install PKG... : install Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "installing ${missing[*]}" "apt-get install ${missing[*]}"
  say "apt-get install ${missing[*]}"
  if [ ! -f /var/lib/apt/periodic/audioprobe-updated ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -q -o DPkg::Lock::Timeout=600 && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/audioprobe-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
}

step_python() {
  local stamp
  stamp="$VENV/.audioprobe-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ]; then say "python env up to date (.venv)"; return; fi
  apt_install libsndfile1 espeak-ng  # espeak-ng: real speech for the judge tests
  [ -x "$VENV/bin/python" ] || { say "creating .venv"; $PY -m venv "$VENV"; }
  say "installing audioprobe and its judges into .venv (torch CPU, prefect, litellm, ...)"
  quiet_pip "$VENV/bin/pip" install -q --progress-bar on -c constraints.txt -e '.[judges,refs,scale,dev]'
  rm -f "$VENV"/.audioprobe-*; touch "$stamp"
}

step_docker() {
  bash sandbox/engine.sh ensure
  apt_install docker-compose  # Debian's compose v1: validates docker-compose.yml in the tests
}
step_image() { "$VENV/bin/audioprobe" sandbox build; }
# docker-compose.yml's images (PostgreSQL, the Prefect server and worker) from the same Debian base,
# offline from any registry; skipped when images with the same content hash exist (docs/compose.md).
step_compose() { "$VENV/bin/python" -m deploy.build; }
step_llm() { bash scripts/setup_llm.sh; }
step_refs() {
  # Only the two programs are installed; the builder fetches the soundfont and the recordings as
  # data packages (apt-get download + unpack into the cache), which needs no root.
  apt_install fluidsynth flite
  "$VENV/bin/audioprobe" refs build
}
step_browser() { apt_install chromium; }
step_postgres() {
  # A local PostgreSQL for the Prefect-on-PostgreSQL test (docker-compose.yml runs the same for a team
  # server): role `prefect`, password `prefect`, allowed to create the databases the test makes.
  apt_install postgresql
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    need_root "creating a PostgreSQL cluster" "pg_createcluster $ver main"
    say "creating PostgreSQL $ver cluster main"; pg_createcluster "$ver" main
  fi
  if ! pg_lsclusters -h | awk '$4 == "online"' | grep -q .; then
    need_root "starting PostgreSQL" "pg_ctlcluster $ver main start"
    say "starting PostgreSQL $ver"; pg_ctlcluster "$ver" main start
  fi
  if [ "$(runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'prefect'")" != 1 ]; then
    say "creating PostgreSQL role prefect"
    runuser -u postgres -- psql -qc "CREATE ROLE prefect LOGIN CREATEDB PASSWORD 'prefect'"
  else
    say "PostgreSQL $ver running, role prefect present"
  fi
}

steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(all)
for s in "${steps[@]}"; do
  case "$s" in
    all) step_python; step_docker; step_image; step_compose; step_llm; step_refs; step_browser
         step_postgres ;;
    python|docker|image|compose|llm|refs|browser|postgres) "step_$s" ;;
    *) echo "setup: unknown step $s" >&2; exit 2 ;;
  esac
done
