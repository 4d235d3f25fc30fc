# shellcheck shell=bash
# Sourced by bin/postgres-dev, bin/postgres-replica, bin/socket-dir, bin/fleet, bin/dev-server
# and bin/install-timescaledb: the layout of a private PostgreSQL cluster's directory and the
# rules that keep root safe while managing it. Owns: checking and preparing state directories,
# writing root's files there, the cluster's password, authentication file and server settings.
# Must never write where another user can write, follow a link it did not create, or use as a
# path anything read from a file the cluster's user can change.
#
# Layout of a cluster directory DIR (run as root; as another user everything is that user's):
#   DIR/            root, 0755: only root creates entries in it
#     .lock port password (0600) initdb.log basebackup.log    root's files
#     data/         the `postgres` user, 0700: the cluster (PGDATA)
#     log/          the `postgres` user, 0700: server.log
# The cluster listens on 127.0.0.1 only, with no Unix socket, and asks every connection for
# the password of the `postgres` role (scram-sha-256); the password lives in DIR/password.
# Root reads nothing under data/ or log/ except a process id it validates, and writes
# there only as `postgres`.

# The PostgreSQL binaries: POSTGRES_DEV_PGBIN, else the newest under /usr/lib/postgresql.
pc_pgbin() {
  local candidate pgbin=""
  if [ -n "${POSTGRES_DEV_PGBIN:-}" ]; then
    [ -x "$POSTGRES_DEV_PGBIN/pg_ctl" ] || { echo "POSTGRES_DEV_PGBIN=$POSTGRES_DEV_PGBIN has no pg_ctl" >&2; return 1; }
    echo "$POSTGRES_DEV_PGBIN"
    return
  fi
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/pg_ctl" ] && pgbin=$candidate
  done
  if [ -z "$pgbin" ]; then
    command -v pg_ctl >/dev/null 2>&1 || { echo "no PostgreSQL binaries found (apt-get install postgresql)" >&2; return 1; }
    pgbin=$(dirname "$(command -v pg_ctl)")
  fi
  echo "$pgbin"
}

pc_is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command as the cluster's owner: `postgres` when root, else the caller.
pc_as_owner() {
  if pc_is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pc_die() { echo "$PC_NAME: $*" >&2; exit 1; }

pc_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# True when only root can change directory $1 itself: owned by root and not writable by
# group or others (or, like /tmp, sticky, so no one else can rename or remove root's entries).
pc_root_only() {
  local stat_out owner mode
  stat_out=$(stat -c '%u %a' -- "$1") || return 1
  owner=${stat_out% *}
  mode=$((8#${stat_out#* }))
  [ "$owner" = 0 ] || return 1
  [ $((mode & 8#022)) = 0 ] || [ $((mode & 8#1000)) != 0 ]
}

# True when directory $1 and every directory above it are real directories only root can
# change, so no one else can swap a link into the path or add entries to it.
pc_check_chain() {
  local component=$1
  while :; do
    [ -d "$component" ] && [ ! -L "$component" ] || pc_die "$component is not a directory"
    pc_root_only "$component" \
      || pc_die "refusing to work under $component: it is not root's alone (owner $(stat -c %U -- "$component"), mode $(stat -c %a -- "$component"))"
    [ "$component" = / ] && return 0
    component=$(dirname -- "$component")
  done
}

# Stops unless every link along path $1 (absolute, as given) is root's and sits in a
# directory only root can change: a link another user made is never followed.
pc_check_links() {
  local prefix="" part parts
  IFS=/ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    [ -n "$part" ] || continue
    prefix=$prefix/$part
    if [ -L "$prefix" ]; then
      [ "$(stat -c %u -- "$prefix")" = 0 ] && pc_root_only "$(realpath -e -- "$(dirname -- "$prefix")")" \
        || pc_die "refusing to follow $prefix: a link someone other than root made or can replace"
    fi
    [ -e "$prefix" ] || return 0
  done
}

# Makes the state directory $1 and prints its real path. As root, refuses unless every
# directory from / down to it is root's alone. A directory left by the old layout (owned by
# `postgres`, with root's files inside) is taken back first (pc_adopt_old_layout).
pc_prepare_dir() {
  local dir existing real
  if ! pc_is_root; then
    mkdir -p -- "$1"
    (cd -- "$1" && pwd -P)
    return
  fi
  pc_check_links "$(realpath -m -s -- "$1")"
  dir=$(realpath -m -- "$1")
  existing=$dir
  while [ ! -e "$existing" ] && [ ! -L "$existing" ]; do existing=$(dirname -- "$existing"); done
  real=$(realpath -e -- "$existing") || pc_die "cannot resolve $existing"
  if [ "$real" = "$dir" ] && [ -d "$real" ] && [ "$(stat -c %u -- "$real")" = "$(id -u postgres)" ]; then
    pc_check_chain "$(dirname -- "$real")"
    # One taker at a time (a lock on the directory itself); the next finds it root's.
    exec 8<"$real"
    flock 8
    [ "$(stat -c %u -- "$real")" = 0 ] || pc_adopt_old_layout "$real"
    exec 8<&-
  fi
  pc_check_chain "$real"
  real=$real${dir#"$existing"}
  (umask 022 && mkdir -p -- "$real")
  pc_check_chain "$real"
  echo "$real"
}

# The old layout gave DIR to `postgres` and wrote root's files in it. Nothing in it can be
# trusted: stop its cluster and clear it as `postgres`, then take the directory back.
pc_adopt_old_layout() {
  local dir=$1 pgbin leftover
  pgbin=$(pc_pgbin)
  echo "$PC_NAME: $dir belongs to postgres (older layout): stopping its cluster and giving the directory to root" >&2
  if [ -d "$dir/data" ] && [ ! -L "$dir/data" ]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  runuser -u postgres -- find "$dir" -mindepth 1 -maxdepth 1 ! -name data -exec rm -rf -- {} + || true
  chown -h root:root -- "$dir"
  chmod 0755 -- "$dir"
  leftover=$(find "$dir" -mindepth 1 -maxdepth 1 ! -name data -printf '%f ')
  [ -z "$leftover" ] || pc_die "$dir: entries appeared while taking it back ($leftover); remove them and retry"
  if [ -e "$dir/data" ]; then
    { [ -d "$dir/data" ] && [ ! -L "$dir/data" ]; } || pc_die "$dir/data is not a directory; remove it and retry"
    runuser -u postgres -- rm -f -- "$dir/data/server.log"
  fi
}

# A directory for the cluster's user under root's DIR: made by root (so never a link
# someone else put there), then given to that user.
pc_owner_subdir() {
  local path=$1
  if [ -e "$path" ] || [ -L "$path" ]; then
    [ -d "$path" ] && [ ! -L "$path" ] || pc_die "$path is not a directory; remove it and retry"
    return
  fi
  mkdir -m 0700 -- "$path"
  pc_is_root && chown -h postgres:postgres -- "$path"
  return 0
}

# Writes $2 to file $1 in a directory only the caller can write: a fresh file renamed over
# the old name, so a link someone left there is replaced, never written through.
pc_write_file() {
  local target=$1 content=$2 mode=${3:-0644} tmp
  tmp=$(mktemp -- "$(dirname -- "$target")/.write.XXXXXX")
  chmod "$mode" -- "$tmp"
  printf '%s\n' "$content" >"$tmp"
  mv -f -T -- "$tmp" "$target"
}

# Reads root's own file $1 (a regular file, not a link); prints nothing when absent.
pc_read_own_file() {
  [ -f "$1" ] && [ ! -L "$1" ] || return 0
  [ "$(stat -c %u -- "$1")" = "$(id -u)" ] || pc_die "$1 is not $(id -un)'s; remove it and retry"
  cat -- "$1"
}

# The cluster's password: made once (hex, so it needs no quoting in SQL or a URL).
pc_password() {
  local dir=$1 password
  password=$(pc_read_own_file "$dir/password")
  if [ -z "$password" ]; then
    password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    pc_write_file "$dir/password" "$password" 0600
  fi
  [[ $password =~ ^[0-9a-f]+$ ]] || pc_die "$dir/password is not what this script writes; remove it and retry"
  echo "$password"
}

pc_port() {
  local port
  port=$(pc_read_own_file "$1/port")
  [[ $port =~ ^[0-9]+$ ]] || return 1
  echo "$port"
}

pc_url() {
  local port password
  port=$(pc_port "$1") || return 1
  password=$(pc_read_own_file "$1/password")
  [ -n "$password" ] || return 1
  echo "postgres://postgres:$password@127.0.0.1:$port/postgres"
}

# Runs psql against URL $1 (further arguments follow) with the password in the environment,
# not on the command line, where every local user could read it in the process list.
pc_psql() {
  local url=$1 scheme rest userinfo password=""
  shift
  scheme=${url%%://*}
  rest=${url#*://}
  userinfo=${rest%%@*}
  if [ "$rest" != "$userinfo" ] && [ "${userinfo#*:}" != "$userinfo" ]; then
    password=$(printf '%b' "${userinfo#*:}" | sed 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')
    password=$(printf '%b' "$password")
    url=$scheme://${userinfo%%:*}@${rest#*@}
  fi
  PGPASSWORD=$password psql -X "$url" "$@"
}

# Who may connect: everyone with the password, over TCP on 127.0.0.1 (the server opens no
# Unix socket), for queries and for streaming replication.
pc_write_hba() {
  pc_as_owner tee -- "$1/pg_hba.conf" >/dev/null <<'HBA'
# Written by bin/postgres-dev at each start: password (scram-sha-256) on 127.0.0.1 only.
host all         all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
HBA
}

# Sets the `postgres` role's password in a stopped cluster (single-user mode, the statement
# on stdin so it never shows in a process list).
pc_set_password() {
  local data=$1 password=$2 pgbin output
  pgbin=$(pc_pgbin)
  output=$(printf "ALTER ROLE postgres PASSWORD '%s';\n" "$password" \
    | pc_as_owner "$pgbin/postgres" --single -D "$data" -c password_encryption=scram-sha-256 postgres 2>&1 >/dev/null) \
    || { echo "$output" >&2; pc_die "could not set the password in $data"; }
  case "$output" in *ERROR*) echo "$output" >&2; pc_die "could not set the password in $data" ;; esac
}

# The process id of the running postmaster (from postmaster.pid, which its user can edit:
# only a number is taken from it, and only to look the process up).
pc_postmaster_pid() {
  local pid
  pid=$(pc_as_owner head -n 1 -- "$1/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# Prints why the running postmaster's binary is not the installed one (a package upgrade
# replaced or removed it), or nothing when it is the same.
pc_binary_changed() {
  local data=$1 pgbin pid exe installed
  pgbin=$(pc_pgbin)
  pid=$(pc_postmaster_pid "$data") || return 0
  exe=$(readlink -- "/proc/$pid/exe" 2>/dev/null) || return 0
  installed=$(readlink -f -- "$pgbin/postgres")
  case "$exe" in
    *" (deleted)") echo "its binary $exe was replaced on disk (package upgrade)" ;;
    "$installed") ;;
    */postgres) echo "it runs $exe, the installed binary is $installed" ;;
  esac
}

pc_running() {
  local dir=$1 pgbin
  pgbin=$(pc_pgbin)
  pc_port "$dir" >/dev/null && pc_as_owner test -f "$dir/data/postmaster.pid" \
    && pc_as_owner "$pgbin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

pc_stop() {
  local dir=$1 pgbin
  pgbin=$(pc_pgbin)
  if pc_running "$dir"; then pc_as_owner "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
}

# Starts the cluster in DIR/data with the given extra server options; records the port.
pc_start_server() {
  local dir=$1 extra=$2 pgbin port
  pgbin=$(pc_pgbin)
  port=$(pc_free_port)
  # -k '': no Unix socket, so nothing but TCP with the password reaches the server.
  if ! pc_as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log/server.log" -w -t 60 \
    -o "-p $port -k '' $extra" start >/dev/null 9>&-; then
    pc_as_owner tail -n 20 -- "$dir/log/server.log" >&2
    exit 1
  fi
  pc_write_file "$dir/port" "$port"
}
