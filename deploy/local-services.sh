#!/usr/bin/env bash
# Makes the services entrasync needs reachable on loopback, with the defaults of src/config.rs:
#   PostgreSQL  127.0.0.1:5432  user postgres, no password (trust on 127.0.0.1)
#   RabbitMQ    127.0.0.1:5672  guest/guest
#
# Uses services that already run; starts installed ones that are stopped; installs Debian's packages
# (postgresql, rabbitmq-server) when they are missing and the script runs as root. Otherwise it stops
# with a message that says exactly what to install or run. Idempotent; prints nothing when all is up.
#
# Environment: LOCAL_SERVICES_TIMEOUT  seconds to wait for each service to accept connections (90);
#              LOCAL_SERVICES_PG_PORT, LOCAL_SERVICES_AMQP_PORT  other ports (5432, 5672), e.g. to try the
#              script on a scratch cluster; entrasync's defaults expect the standard ports.
# Exit status: 0 when both services accept connections, 1 otherwise (the reason is on stderr).

set -euo pipefail

readonly HOST=127.0.0.1
readonly PG_PORT="${LOCAL_SERVICES_PG_PORT:-5432}"
readonly AMQP_PORT="${LOCAL_SERVICES_AMQP_PORT:-5672}"
readonly TIMEOUT="${LOCAL_SERVICES_TIMEOUT:-90}"
# Debian keeps the RabbitMQ and some PostgreSQL tools in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "local-services: $*" >&2; }
die() {
    echo "local-services: error: $*" >&2
    exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
# PID 1 is systemd: start services through their units rather than beside them.
with_systemd() { [ -d /run/systemd/system ] && have systemctl; }

port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Runs a command quietly; on failure prints what it said and stops. The command does not inherit the
# lock (fd 9): a daemon it starts would otherwise hold the lock for as long as it runs.
run_quiet() {
    local out
    if ! out=$("$@" 2>&1 9>&-); then
        printf '%s\n' "$out" >&2
        die "command failed: $*"
    fi
}

# Waits until "$@" succeeds, up to TIMEOUT seconds; $1 names what is awaited.
wait_for() {
    local what=$1
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$what did not accept connections within ${TIMEOUT}s"
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------- install

pg_installed() { have pg_lsclusters && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
rmq_installed() { have rabbitmq-server && have rabbitmqctl; }

# Installs the missing Debian packages in one apt-get run, or explains what to install.
install_missing() {
    local packages=()
    # A service already reachable (a container, another install) needs no package.
    pg_installed || pg_accepting || packages+=(postgresql)
    rmq_installed || port_open "$AMQP_PORT" || packages+=(rabbitmq-server)
    [ ${#packages[@]} -eq 0 ] && return 0

    if ! have apt-get; then
        die "missing: ${packages[*]}. This is not a Debian-like system: install PostgreSQL (listening on" \
            "$HOST:$PG_PORT, user postgres allowed without a password from $HOST) and RabbitMQ (listening on" \
            "$HOST:$AMQP_PORT, user guest/guest), or point ENTRASYNC_DATABASE_URL and ENTRASYNC_AMQP_URL elsewhere"
    fi
    if ! is_root; then
        die "missing: ${packages[*]}. Install with: sudo apt-get update && sudo apt-get install -y ${packages[*]}" \
            "(or run this script as root: sudo $0)"
    fi
    say "installing ${packages[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    run_quiet apt-get update
    run_quiet apt-get install -y "${packages[@]}"
}

# ------------------------------------------------------------------------------------- PostgreSQL

pg_accepting() {
    if have pg_isready; then
        pg_isready -q -h "$HOST" -p "$PG_PORT" -t 3
    else
        port_open "$PG_PORT"
    fi
}

# Logs in the way entrasync's default URL does: user postgres, no password.
pg_login() {
    have psql || return 0 # cannot check without the client; the server accepts connections
    env -u PGPASSWORD -u PGSERVICE PGPASSFILE=/nonexistent/.pgpass PGCONNECT_TIMEOUT=5 \
        psql -w -X -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' 2>&1
}

# "version name status" of the Debian cluster on PG_PORT, if any.
pg_cluster_on_port() {
    have pg_lsclusters || return 0
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }'
}

pg_start_cluster() {
    local version=$1 name=$2
    if ! is_root && [ "$(id -un)" != postgres ]; then
        die "PostgreSQL cluster $version/$name is installed but stopped. Start it with:" \
            "sudo pg_ctlcluster $version $name start (or run this script as root: sudo $0)"
    fi
    say "starting PostgreSQL cluster $version/$name"
    if with_systemd && is_root; then
        run_quiet systemctl start "postgresql@$version-$name"
    else
        run_quiet pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
    fi
}

# Lets user postgres log in from 127.0.0.1 without a password (local development only).
pg_allow_trust() {
    local version=$1 name=$2 hba tmp
    hba="/etc/postgresql/$version/$name/pg_hba.conf"
    [ -f "$hba" ] || die "cannot find $hba to allow user postgres from $HOST"
    tmp=$(mktemp)
    # Insert before the first rule: pg_hba.conf is read top-down and the first match wins.
    awk -v rule="host    all    postgres    $HOST/32    trust    # entrasync deploy/local-services.sh: local development" '
        !done && /^[[:space:]]*(local|host)/ { print rule; done = 1 }
        { print }
        END { if (!done) print rule }' "$hba" >"$tmp"
    cat "$tmp" >"$hba" # keeps the owner and mode of pg_hba.conf
    rm -f "$tmp"
    say "allowed user postgres from $HOST without a password in $hba (trust, for local development)"
    run_quiet pg_ctlcluster "$version" "$name" reload
}

ensure_postgres() {
    local cluster version name status
    if ! pg_accepting; then
        cluster=$(pg_cluster_on_port)
        if [ -z "$cluster" ]; then
            if ! is_root; then
                die "no PostgreSQL cluster listens on port $PG_PORT. Create one with:" \
                    "sudo pg_createcluster --port $PG_PORT --start <version> main (or run this script as root: sudo $0)"
            fi
            version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
            [ -n "$version" ] || die "PostgreSQL is installed but /usr/lib/postgresql has no server version"
            name=main
            [ ! -e "/etc/postgresql/$version/main" ] || name=entrasync
            say "creating PostgreSQL cluster $version/$name on port $PG_PORT"
            run_quiet pg_createcluster --port "$PG_PORT" "$version" "$name"
            cluster="$version $name down"
        fi
        read -r version name status <<<"$cluster"
        # "online" but not accepting yet means it is starting or recovering: wait for it.
        case $status in
        online*) ;;
        *) pg_start_cluster "$version" "$name" ;;
        esac
        wait_for "PostgreSQL on $HOST:$PG_PORT" pg_accepting
    fi

    local out
    if out=$(pg_login); then return 0; fi
    cluster=$(pg_cluster_on_port)
    case $out in
    *password* | *"no pg_hba.conf entry"* | *"authentication failed"*)
        if [ -n "$cluster" ] && is_root; then
            read -r version name status <<<"$cluster"
            pg_allow_trust "$version" "$name"
            # The reload takes effect asynchronously; give it a moment.
            local deadline=$((SECONDS + 10))
            until out=$(pg_login); do
                [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL still refuses user postgres from $HOST: $out"
                sleep 0.5
            done
            return 0
        fi
        die "PostgreSQL on $HOST:$PG_PORT refuses user postgres without a password ($out). For local" \
            "development add 'host all postgres $HOST/32 trust' as the first rule of its pg_hba.conf and" \
            "reload it (or run this script as root), or set ENTRASYNC_DATABASE_URL with a password"
        ;;
    *) die "cannot log in to PostgreSQL on $HOST:$PG_PORT as user postgres: $out" ;;
    esac
}

# --------------------------------------------------------------------------------------- RabbitMQ

# rabbitmqctl talks to the node over Erlang distribution: root (Debian's wrapper) or rabbitmq only.
can_ctl() { have rabbitmqctl && { is_root || [ "$(id -un)" = rabbitmq ]; }; }

# The AMQP 0-9-1 handshake up to Connection.Start: the broker speaks AMQP on the port.
amqp_handshake() {
    local reply
    reply=$(timeout 5 bash -c "
        exec 3<>/dev/tcp/$HOST/$AMQP_PORT || exit 1
        printf 'AMQP\\x00\\x00\\x09\\x01' >&3
        head -c 11 <&3 | od -An -tx1 | tr -d ' \\n'" 2>/dev/null) || return 1
    # frame type 1 (method), channel 0, 4-byte size, class 10 (connection), method 10 (start)
    [[ $reply == 010000????????000a000a ]]
}

# The port is open before the broker accepts logins, so ask the node itself when that is possible.
rmq_ready() {
    port_open "$AMQP_PORT" || return 1
    if can_ctl; then
        timeout 30 rabbitmqctl -q await_startup >/dev/null 2>&1
    else
        amqp_handshake
    fi
}

rmq_start() {
    if ! is_root && [ "$(id -un)" != rabbitmq ]; then
        die "RabbitMQ is installed but not running. Start it with: sudo rabbitmq-server -detached" \
            "(or with systemd: sudo systemctl start rabbitmq-server; or run this script as root: sudo $0)"
    fi
    # A node that answers ping is booting (its listener opens late): wait instead of starting another.
    if rabbitmqctl -q ping >/dev/null 2>&1; then return 0; fi
    say "starting RabbitMQ"
    if with_systemd && is_root; then
        run_quiet systemctl start rabbitmq-server
    else
        run_quiet rabbitmq-server -detached
    fi
}

ensure_rabbitmq() {
    if ! rmq_ready; then
        port_open "$AMQP_PORT" || rmq_start
        wait_for "RabbitMQ on $HOST:$AMQP_PORT" rmq_ready
    fi
    if can_ctl && ! rabbitmqctl -q authenticate_user guest guest >/dev/null 2>&1; then
        die "RabbitMQ refuses guest/guest. Create the user with: sudo rabbitmqctl add_user guest guest &&" \
            "sudo rabbitmqctl set_permissions -p / guest '.*' '.*' '.*'"
    fi
}

# ------------------------------------------------------------------------------------------- main

# Two runs at once (parallel test jobs) must not both start a service.
if have flock; then
    exec 9>"${TMPDIR:-/tmp}/entrasync-local-services.$(id -u).lock"
    flock -w "$((TIMEOUT * 2))" 9 || die "another deploy/local-services.sh did not finish within $((TIMEOUT * 2))s"
fi

install_missing
ensure_postgres
ensure_rabbitmq
