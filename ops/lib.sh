# shellcheck shell=bash
#
# ops/lib.sh — helpers shared by ops/test and ops/run. Source it, don't run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It starts private PostgreSQL and Redis instances on free ports on
# 127.0.0.1, with all their files under $REPO/.local/<name>/ (git-ignored), so a
# test run and a running platform never collide with each other or with any
# system-wide instance.
#
# Functions (the public ones):
#   ensure_packages                 apt-get install postgresql / redis-server if missing
#   ensure_lint_tools               shellcheck, and cargo's rustfmt and clippy
#   free_port                       print a free TCP port on 127.0.0.1 (<= 55535)
#   start_postgres [--keep] DIR [ARGS...]
#                                   private PostgreSQL; extra ARGS go to the server
#                                   (e.g. -c fsync=off); exports PGPORT_CHAT and
#                                   CHAT_PG_ADMIN_URL. Without --keep the cluster is
#                                   wiped and recreated (tests); with --keep an
#                                   existing one is reused, so its data persists
#                                   (ops/run)
#   start_redis DIR                 private Redis; exports CHAT_REDIS_PORT, REDIS_URL
#   stop_services                   stop whatever was started, then delete the
#                                   directories registered with remove_on_stop;
#                                   idempotent and safe in a trap
#   remove_on_stop DIR              delete DIR in stop_services (test runs)
#   reap_stale_test_dirs            stop and delete .local/test-PID dirs of dead runs
#   pg_bin_dir                      print /usr/lib/postgresql/<newest>/bin
#   pg_psql ARGS...                 psql from that directory
#   log MSG / die MSG               "==> MSG" progress line / error and exit 1
#
# Written for Debian 12 as root (initdb refuses root, so PostgreSQL runs as the
# `postgres` user); as a normal user everything simply runs as that user.

# The repository root, from this file's location (ops/lib.sh -> ..).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# All run-time data lives here; each script uses its own subdirectory.
LOCAL_ROOT="$REPO/.local"

# State of what this shell started (read by stop_services).
_CHAT_PG_DATA=""       # PostgreSQL data directory (DIR/pg, or a /tmp fallback)
_CHAT_REDIS_DIR=""     # directory holding redis.pid
_CHAT_REDIS_PORT=""
_CHAT_REMOVE_DIRS=()   # deleted by stop_services
_CHAT_APT_UPDATED=0

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command with root rights (we usually are root already).
_as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Run a command as the PostgreSQL owner: `postgres` when we are root (initdb
# refuses to run as root), ourselves otherwise. cd / first: the postgres user
# may not be allowed into our working directory.
_as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# ---------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------

# Print the bin directory of the newest installed PostgreSQL major version,
# e.g. /usr/lib/postgresql/15/bin. Fails (status 1, no output) if none.
pg_bin_dir() {
    local initdb
    initdb="$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
    [[ -x $initdb ]] || return 1
    dirname "$initdb"
}

# psql of that version (/usr/bin/psql is only Debian's version-picking wrapper).
pg_psql() {
    local bin
    bin="$(pg_bin_dir)" || die "PostgreSQL is not installed"
    "$bin/psql" "$@"
}

_apt_get() {
    # No stdin, no prompts, keep existing config files, wait for the dpkg lock
    # (e.g. unattended-upgrades) instead of failing at once.
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "$@" </dev/null
}

# Install the Debian packages we need, only those that are missing.
# `apt-get update`, once per script run.
_apt_update_once() {
    ((_CHAT_APT_UPDATED == 1)) && return 0
    _apt_get update -qq || die "apt-get update failed"
    _CHAT_APT_UPDATED=1
}

ensure_packages() {
    local missing=()
    pg_bin_dir >/dev/null || missing+=(postgresql)
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        missing+=(redis-server)
    fi
    ((${#missing[@]} == 0)) && return 0

    log "installing ${missing[*]} (apt-get)"
    _apt_update_once
    _apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"

    pg_bin_dir >/dev/null || die "postgresql installed, but no /usr/lib/postgresql/*/bin/initdb"
    command -v redis-server >/dev/null 2>&1 || die "redis-server installed, but not on PATH"
    command -v redis-cli >/dev/null 2>&1 || die "redis-server installed, but no redis-cli on PATH"
}

# The lint stage's tools: shellcheck (apt), cargo's rustfmt and clippy (rustup).
ensure_lint_tools() {
    if ! command -v shellcheck >/dev/null 2>&1; then
        log "installing shellcheck (apt-get)"
        _apt_update_once
        _apt_get install -y -qq --no-install-recommends shellcheck >/dev/null \
            || die "apt-get install shellcheck failed"
    fi
    local component
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            command -v rustup >/dev/null 2>&1 || die "cargo $component missing and no rustup to add it"
            log "rustup component add $component"
            rustup component add "$component" >/dev/null || die "rustup component add $component failed"
        fi
    done
}

# ---------------------------------------------------------------------------
# The web client (web/): Node.js packages, the Vite build, and Chromium for its
# end-to-end test
# ---------------------------------------------------------------------------

# Node.js 20.19 or newer (Vite 8) with npm; installs Debian's when there is none.
ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "installing nodejs npm (apt-get)"
        _apt_update_once
        _apt_get install -y -qq --no-install-recommends nodejs npm >/dev/null || die "apt-get install nodejs npm failed"
    fi
    local version
    version="$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a*1000+b)')"
    ((version >= 20019)) || die "Node.js $(node --version) is too old for the web client's build (Vite 8 needs 20.19 or newer)"
}

# Installs web/'s npm packages (exactly as package-lock.json says) when the lock
# file changed since the last install, then builds web/dist.
build_web() {
    ensure_node
    local web="$REPO/web" stamp lock
    stamp="$web/node_modules/.chat-lock-sha256"
    lock="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock" ]]; then
        log "npm ci (web/)"
        (cd "$web" && npm ci --no-audit --no-fund --loglevel=error </dev/null) || die "npm ci in web/ failed"
        echo "$lock" >"$stamp"
    fi
    log "npm run build (web/ → web/dist)"
    (cd "$web" && npm run --silent build </dev/null >/dev/null) || die "building the web client failed"
}

# Debian's Chromium, for the browser tests (playwright-core drives it; it never
# downloads a browser of its own).
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    log "installing chromium (apt-get)"
    _apt_update_once
    _apt_get install -y -qq --no-install-recommends chromium fonts-noto-color-emoji >/dev/null \
        || die "apt-get install chromium failed"
}

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

# Print a TCP port on 127.0.0.1 that nothing is bound to. Random in
# 20000..55535: below the kernel's ephemeral range start (32768) is not enough
# on its own, and Redis Cluster needs port + 10000 to be a valid port too.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - <<'PY'
import random, socket, sys
for _ in range(500):
    port = random.randint(20000, 55535)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no free port found")
PY
        return
    fi
    # Fallback without python: a port nobody answers on is taken as free.
    local port i
    for ((i = 0; i < 500; i++)); do
        port=$((20000 + RANDOM % 35536))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "free_port: no free port found" >&2
    return 1
}

# Wait until a TCP port on 127.0.0.1 accepts connections: _wait_tcp PORT SECONDS
_wait_tcp() {
    local port=$1 deadline=$((SECONDS + $2))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Where PostgreSQL keeps data (HOME/pg) and its socket (HOME) for a DIR.
# Normally DIR itself. A fallback under /tmp (fixed per DIR, so reruns and
# clean-ups find it) when the postgres user cannot reach DIR (e.g. a repo
# under /root, which is mode 700) or when DIR is too long for a Unix socket
# path (108 bytes, and PostgreSQL appends "/.s.PGSQL.NNNNN.lock").
_pg_tmp_home() {
    printf '/tmp/chat-pg-%s\n' "$(printf '%s' "$1" | md5sum | cut -c1-12)"
}
_pg_home() {
    local dir=$1
    if ((${#dir} <= 80)) && { ((EUID != 0)) || runuser -u postgres -- test -w "$dir" -a -x "$dir"; }; then
        echo "$dir"
    else
        _pg_tmp_home "$dir"
    fi
}

# Stop a server running on a data directory, if any (pidfile present).
_pg_stop_data() {
    local data=$1 bin pid
    [[ -f $data/postmaster.pid ]] || return 0
    bin="$(pg_bin_dir)" || return 0
    _as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
        || _as_pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 \
        || {
            # Last resort: the postmaster's pid is the first line of the pidfile.
            pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
            if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        }
    return 0
}

# start_postgres [--keep] DIR [server args...]
# Cluster in DIR/pg, socket in DIR, listening on 127.0.0.1:<free port> (a new
# port at every start). Whatever server an earlier run left on DIR/pg is
# stopped first. Then, by default, the cluster is wiped and created afresh
# (test data is disposable); with --keep, a cluster that is already there is
# reused as it is (only created when missing), so its databases survive.
start_postgres() {
    local keep=0
    if [[ ${1:-} == --keep ]]; then
        keep=1
        shift
    fi
    (($# >= 1)) || die "usage: start_postgres [--keep] DIR [server args...]"
    local dir=$1
    shift
    local bin home data port opts arg attempt version
    bin="$(pg_bin_dir)" || die "PostgreSQL is not installed (run ensure_packages)"

    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if ((EUID == 0)); then
        chown postgres:postgres "$dir"
    fi
    home="$(_pg_home "$dir")"
    data="$home/pg"
    if [[ $home != "$dir" ]]; then
        log "PostgreSQL files in $home: $dir is too long for a socket path or not reachable by user postgres"
        mkdir -p "$home"
        chmod 700 "$home"
        if ((EUID == 0)); then chown postgres:postgres "$home"; fi
    fi
    # Record it now, so that stop_services cleans up even if we fail below.
    _CHAT_PG_DATA=$data

    # The superuser's password: kept beside the cluster's directory, readable by us only.
    local password
    password="$(_secret_in "$dir/pg-password")"

    # Stop whatever an earlier run left running on this data directory.
    _pg_stop_data "$data"

    if ((keep)) && [[ -f $data/PG_VERSION ]]; then
        # Reuse the cluster. A server of another major version cannot open it:
        # say so rather than silently throwing the data away.
        version="$(cat "$data/PG_VERSION")"
        if [[ $version != "$(basename "$(dirname "$bin")")" ]]; then
            die "$data was created by PostgreSQL $version, but $bin is another version; move it away or start clean (ops/run: CHAT_RESET=1)"
        fi
        log "reusing the PostgreSQL cluster in $data"
    else
        # Disposable data (or no cluster yet): start over.
        rm -rf "$data"
        # --locale=C: the result must not depend on which locales the machine has.
        # --no-sync only for disposable clusters: a kept one must survive a crash.
        local sync=(--no-sync)
        if ((keep)); then sync=(); fi
        # TCP needs the password (scram); the socket only admits the postgres OS account
        # (peer). initdb reads the password from a copy only user postgres can read.
        local pwcopy="$home/.pwfile"
        ( umask 077; printf '%s\n' "$password" >"$pwcopy" )
        if ((EUID == 0)); then chown postgres:postgres "$pwcopy"; fi
        if ! _as_pg "$bin/initdb" -D "$data" --auth-host=scram-sha-256 --auth-local=peer \
            --pwfile="$pwcopy" -U postgres -E UTF8 --locale=C "${sync[@]}" \
            >"$home/initdb.log" 2>&1; then
            rm -f "$pwcopy"
            cat "$home/initdb.log" >&2
            die "initdb failed (log: $home/initdb.log)"
        fi
        rm -f "$pwcopy"
    fi

    # Server options: pg_ctl hands -o to /bin/sh, so quote every word.
    for attempt in 1 2 3; do
        port="$(free_port)" || die "no free port for PostgreSQL"
        opts="-p $port -k $(printf '%q' "$home") -c listen_addresses=127.0.0.1 -c max_connections=400"
        for arg in "$@"; do
            opts+=" $(printf '%q' "$arg")"
        done
        log "starting PostgreSQL on 127.0.0.1:$port"
        if _as_pg "$bin/pg_ctl" -D "$data" -l "$home/pg.log" -w -t 60 -o "$opts" start >/dev/null; then
            break
        fi
        # Most likely someone took the port in the meantime: try another one.
        _pg_stop_data "$data"
        if ((attempt == 3)); then
            tail -n 20 "$home/pg.log" >&2 || true
            die "PostgreSQL did not start (log: $home/pg.log)"
        fi
        log "PostgreSQL failed to start on port $port, retrying"
    done

    # pg_ctl -w already waited; also make sure the TCP listener answers.
    local deadline=$((SECONDS + 30))
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
        ((SECONDS < deadline)) || die "PostgreSQL on port $port is not ready (log: $home/pg.log)"
        sleep 0.1
    done

    # A kept cluster from before passwords (pg_hba `trust`): give it the password and the
    # rules a new one gets.
    if grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$data/pg_hba.conf"; then
        log "securing the kept PostgreSQL cluster (password, scram-sha-256)"
        # On stdin, not the command line (which `ps` shows to everyone).
        printf "ALTER USER postgres PASSWORD '%s';\n" "$password" \
            | _as_pg "$bin/psql" -h "$home" -p "$port" -U postgres -d postgres -qX -v ON_ERROR_STOP=1 -f - >/dev/null \
            || die "could not set the PostgreSQL password"
        _as_pg sh -c "printf 'local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n' >'$data/pg_hba.conf'"
        _as_pg "$bin/pg_ctl" -D "$data" reload >/dev/null
    fi

    export PGPORT_CHAT=$port
    export CHAT_PG_ADMIN_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
}

# _secret_in FILE — prints the secret kept in FILE, making a random one (hex, so it is
# safe in URLs) the first time. FILE is readable by its owner only.
_secret_in() {
    local file=$1
    if [[ ! -s $file ]]; then
        ( umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$file" )
    fi
    chmod 600 "$file"
    cat "$file"
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# Stop the redis-server whose pidfile is DIR/redis.pid, if it is still running.
# PORT (optional) lets us ask it politely first.
_redis_stop_dir() {
    local dir=$1 port=${2:-} pid="" i
    if [[ -f $dir/redis.pid ]]; then
        pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
        [[ $pid =~ ^[0-9]+$ ]] || pid=""
    fi
    # Only ever signal a redis-server (the pid may have been reused).
    if [[ -n $pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != redis-server* ]]; then
        pid=""
    fi
    if [[ -n $port ]]; then
        REDISCLI_AUTH="$(cat "$dir/redis-password" 2>/dev/null || true)" \
            redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/redis.pid"
}

# start_redis DIR — redis-server without persistence, daemonized, pidfile and
# log in DIR.
start_redis() {
    (($# == 1)) || die "usage: start_redis DIR"
    local dir=$1 port attempt deadline
    command -v redis-server >/dev/null 2>&1 || die "redis-server is not installed (run ensure_packages)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    _CHAT_REDIS_DIR=$dir

    _redis_stop_dir "$dir" # leftover from an earlier run

    # A password, so that other local accounts cannot read the bus or inject events. It
    # goes in a config file only we can read, never on the command line (which `ps`
    # shows to everyone); redis-cli gets it through REDISCLI_AUTH.
    local password
    password="$(_secret_in "$dir/redis-password")"
    ( umask 077; printf 'requirepass %s\n' "$password" >"$dir/redis.conf" )
    for attempt in 1 2 3; do
        port="$(free_port)" || die "no free port for Redis"
        _CHAT_REDIS_PORT=$port
        log "starting Redis on 127.0.0.1:$port"
        # The config file holds only the password: built-in defaults plus these options.
        redis-server "$dir/redis.conf" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" \
            --logfile "$dir/redis.log" >/dev/null \
            || die "redis-server failed to start (log: $dir/redis.log)"
        # --daemonize returns before the port is bound: wait for PING.
        deadline=$((SECONDS + 10))
        while [[ "$(REDISCLI_AUTH=$password redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" != PONG ]]; do
            ((SECONDS < deadline)) || break
            sleep 0.05
        done
        if [[ "$(REDISCLI_AUTH=$password redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == PONG ]]; then
            export CHAT_REDIS_PORT=$port
            export REDIS_URL="redis://default:$password@127.0.0.1:$port"
            return 0
        fi
        _redis_stop_dir "$dir"
        log "Redis did not answer on port $port, retrying"
    done
    tail -n 20 "$dir/redis.log" >&2 || true
    die "Redis did not start (log: $dir/redis.log)"
}

# ---------------------------------------------------------------------------
# Stopping and cleaning up
# ---------------------------------------------------------------------------

# Delete DIR when stop_services runs (for per-run test directories).
remove_on_stop() {
    _CHAT_REMOVE_DIRS+=("$1")
}

# Stop everything this shell started; then delete the directories registered
# with remove_on_stop. Safe to call several times, from a trap, and after a
# start that failed halfway (it only acts on pidfiles that exist).
stop_services() {
    local - # restore shell options on return
    set +e
    local dir
    if [[ -n $_CHAT_REDIS_DIR ]]; then
        _redis_stop_dir "$_CHAT_REDIS_DIR" "$_CHAT_REDIS_PORT"
        _CHAT_REDIS_DIR="" _CHAT_REDIS_PORT=""
    fi
    if [[ -n $_CHAT_PG_DATA ]]; then
        _pg_stop_data "$_CHAT_PG_DATA"
        _CHAT_PG_DATA=""
    fi
    for dir in "${_CHAT_REMOVE_DIRS[@]}"; do
        [[ -n $dir ]] || continue
        # A /tmp fallback home belongs to the directory it stands in for.
        rm -rf -- "$dir" "$(_pg_tmp_home "$dir")"
    done
    _CHAT_REMOVE_DIRS=()
    return 0
}

# Test directories are .local/test-<pid of ops/test>. Stop the services of
# runs that died without cleaning up (kill -9, machine crash) and delete them.
reap_stale_test_dirs() {
    local dir pid
    for dir in "$LOCAL_ROOT"/test-*; do
        [[ -d $dir ]] || continue
        pid=${dir##*/test-}
        [[ $pid =~ ^[0-9]+$ ]] || continue
        kill -0 "$pid" 2>/dev/null && continue # that run is still going
        _redis_stop_dir "$dir"
        _pg_stop_data "$dir/pg"
        _pg_stop_data "$(_pg_tmp_home "$dir")/pg"
        rm -rf -- "$dir" "$(_pg_tmp_home "$dir")"
    done
}

# ---------------------------------------------------------------------------
# S3-compatible object storage for tests: s3s-fs (real S3 wire protocol, verifies
# SigV4 signatures, so presigned URLs are really checked). Built once with cargo into
# a cache outside the repository and reused.
# ---------------------------------------------------------------------------
S3S_ROOT="${CHAT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-tools}"
_CHAT_S3_PID=""

ensure_s3s_fs() {
    if [[ ! -x "$S3S_ROOT/bin/s3s-fs" ]]; then
        log "installing s3s-fs 0.14.1 into $S3S_ROOT (once; takes a few minutes)"
        cargo install -q s3s-fs@0.14.1 --locked --features binary --root "$S3S_ROOT" \
            || die "could not install s3s-fs"
    fi
}

# start_s3 DIR BUCKET: s3s-fs on a free port serving DIR/s3, with BUCKET created;
# exports CHAT_S3_TEST_ENDPOINT, CHAT_S3_TEST_BUCKET, CHAT_S3_TEST_ACCESS_KEY,
# CHAT_S3_TEST_SECRET_KEY.
start_s3() {
    local dir=$1 bucket=$2 port
    port="$(free_port)"
    mkdir -p "$dir/s3/$bucket"
    CHAT_S3_TEST_ACCESS_KEY="test-access-key"
    CHAT_S3_TEST_SECRET_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    "$S3S_ROOT/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
        --access-key "$CHAT_S3_TEST_ACCESS_KEY" --secret-key "$CHAT_S3_TEST_SECRET_KEY" \
        "$dir/s3" >"$dir/s3s.log" 2>&1 &
    _CHAT_S3_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    log "starting s3s-fs on 127.0.0.1:$port"
    export CHAT_S3_TEST_ENDPOINT="http://127.0.0.1:$port" CHAT_S3_TEST_BUCKET="$bucket"
    export CHAT_S3_TEST_ACCESS_KEY CHAT_S3_TEST_SECRET_KEY
}

stop_s3() {
    if [[ -n "$_CHAT_S3_PID" ]]; then
        kill "$_CHAT_S3_PID" 2>/dev/null || true
        wait "$_CHAT_S3_PID" 2>/dev/null || true
        _CHAT_S3_PID=""
    fi
}
