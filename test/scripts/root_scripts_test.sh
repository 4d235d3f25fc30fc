#!/usr/bin/env bash
# The scripts run as root (bin/postgres-dev, bin/postgres-replica, bin/socket-dir,
# bin/install-timescaledb) against local users who try to use them: an unprivileged user
# made for the test (removed after, even on failure) and the `postgres` user, which any
# superuser of a cluster can act as (COPY ... TO PROGRAM). Real clusters, real users, real
# files; nothing is mocked. Needs root; says so loudly and passes when not root.
#
#   test/scripts/root_scripts_test.sh    (rake test:scripts)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
  echo "*** test/scripts/root_scripts_test.sh SKIPPED: it must run as root (it adds a user and runs the scripts as root)"
  exit 0
fi

work=$(mktemp -d /tmp/root-scripts-test.XXXXXX)
chmod 0755 "$work" # the clusters' user must reach its directories below
user=lirs$$
useradd --no-create-home --shell /usr/sbin/nologin "$user"
cleanup() {
  for dir in "$work"/*/; do
    [ -d "$dir/data" ] && runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
  done
  userdel "$user" 2>/dev/null
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
passed=0
fail() { echo "  FAIL: $*"; failed=$((failed + 1)); }
ok() { passed=$((passed + 1)); }
as_user() { runuser -u "$user" -- "$@"; }
as_postgres() { runuser -u postgres -- "$@"; }
# A file and a directory of root's that no one else may change.
plant_targets() {
  secret=$work/secret-$1
  printf 'root only\n' >"$secret"
  chmod 0600 "$secret"
  precious=$work/precious-$1
  mkdir -p "$precious"
  printf 'keep\n' >"$precious/file"
}
root_files_intact() {
  [ "$(cat "$secret")" = "root only" ] || fail "$1: root's 0600 file was overwritten: $(head -c 80 "$secret")"
  [ -f "$precious/file" ] || fail "$1: root's directory $precious was removed"
}
port_of() { cat "$1/port"; }

echo "test_unauthenticated_local_connections_are_refused"
dir=$work/auth
url=$("$root/bin/postgres-dev" start "$dir" | sed -n 's/^DATABASE_URL=//p')
port=$(port_of "$dir")
psql -X -At "$url" -c 'select 1' | grep -qx 1 && ok || fail "the printed DATABASE_URL does not connect"
as_user psql -X -w -At "postgres://postgres@127.0.0.1:$port/postgres" -c 'select 1' >/dev/null 2>&1 \
  && fail "a local user connected without a password" || ok
as_user psql -X -w -At "postgres://postgres:guess@127.0.0.1:$port/postgres" -c 'select 1' >/dev/null 2>&1 \
  && fail "a local user connected with a wrong password" || ok
as_postgres psql -X -w -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1 \
  && fail "the postgres user connected without a password" || ok
as_postgres psql -X -w -At -d postgres -c 'select 1' >/dev/null 2>&1 \
  && fail "a connection over a Unix socket was accepted" || ok
as_user cat "$dir/password" >/dev/null 2>&1 && fail "a local user read the cluster's password" || ok

echo "test_local_users_cannot_plant_links_where_root_writes"
plant_targets plant
for who in "$user" postgres; do
  runuser -u "$who" -- ln -sfn "$secret" "$dir/port" 2>/dev/null && fail "$who replaced $dir/port with a link" || ok
  runuser -u "$who" -- sh -c "echo $precious > '$dir/socket-dir'" 2>/dev/null && fail "$who wrote $dir/socket-dir" || ok
done
"$root/bin/postgres-dev" stop "$dir" && "$root/bin/postgres-dev" start "$dir" >/dev/null || fail "restart after the attempts"
root_files_intact "planting in DIR"

echo "test_links_the_postgres_user_plants_in_its_own_directories_are_not_written_through"
plant_targets owned
"$root/bin/postgres-dev" stop "$dir"
as_postgres ln -sfn "$secret" "$dir/log/server.log"
as_postgres ln -sfn "$secret" "$dir/data/pg_hba.conf"
"$root/bin/postgres-dev" start "$dir" >/dev/null 2>&1 # fails: the cluster's own files are broken
"$root/bin/postgres-dev" stop "$dir" >/dev/null 2>&1
root_files_intact "links in data/ and log/"
[ -L "$dir/data/pg_hba.conf" ] && [ "$(stat -c %u "$secret")" = 0 ] && ok || fail "the planted link was replaced by root's file"
as_postgres rm -f "$dir/log/server.log" "$dir/data/pg_hba.conf"

echo "test_a_directory_of_the_old_layout_is_taken_back_without_following_what_postgres_left"
# The scripts as they were before the root-owned layout (a commit of this repository).
old_scripts=1d58a39685cc34197d67549e579a4d1dd9f74761
old_layout_test() {
  plant_targets old
  old=$work/old-bin
  mkdir -p "$old"
  git -C "$root" archive "$old_scripts" bin/postgres-dev bin/socket-dir | tar -x -C "$old"
  dir=$work/oldlayout
  olds_url=$("$old/bin/postgres-dev" start "$dir" | sed -n 's/^DATABASE_URL=//p')
  psql -X -q "$olds_url" -c 'create table kept (x int); insert into kept values (42)' || fail "the old script's cluster"
  as_postgres rm -f "$dir/port" "$dir/.lock"
  as_postgres ln -s "$secret" "$dir/port"
  as_postgres ln -s "$secret" "$dir/.lock"
  as_postgres sh -c "echo $precious > '$dir/socket-dir'"
  "$root/bin/postgres-dev" stop "$dir" 2>/dev/null
  root_files_intact "stop of an old-layout directory"
  url=$("$root/bin/postgres-dev" start "$dir" 2>/dev/null | sed -n 's/^DATABASE_URL=//p')
  root_files_intact "start of an old-layout directory"
  [ "$(stat -c '%U %a' "$dir")" = "root 755" ] && ok || fail "the directory is not root's: $(stat -c '%U %a' "$dir")"
  [ "$(psql -X -At "$url" -c 'select x from kept')" = 42 ] && ok || fail "the old cluster's data is not there"
  as_user psql -X -w "postgres://postgres@127.0.0.1:$(port_of "$dir")/postgres" -c 'select 1' >/dev/null 2>&1 \
    && fail "the old trust cluster still lets anyone in" || ok
  "$root/bin/postgres-dev" stop "$dir"
  root_files_intact "stop after taking it back"
}
if git -C "$root" cat-file -e "$old_scripts^{commit}" 2>/dev/null; then
  old_layout_test
else
  echo "*** SKIPPED: the scripts of commit $old_scripts are not in this clone (shallow?)"
fi

echo "test_root_refuses_a_directory_another_user_can_write"
plant_targets writable
dir=$work/users
mkdir "$dir"
chown "$user" "$dir"
as_user sh -c "ln -s '$secret' '$dir/port'; echo '$precious' > '$dir/socket-dir'"
"$root/bin/postgres-dev" start "$dir" >/dev/null 2>&1 && fail "started in a directory $user owns" || ok
"$root/bin/socket-dir" --remove "$dir" 2>/dev/null && fail "socket-dir --remove worked in a directory $user owns" || ok
"$root/bin/socket-dir" "$dir" >/dev/null 2>&1 && fail "socket-dir used a directory $user owns" || ok
root_files_intact "a directory another user owns"

echo "test_root_never_follows_a_link_another_user_made_to_a_cluster_directory"
plant_targets link
mkdir -m 1777 "$work/shared"
as_user ln -s "$precious" "$work/shared/pg"
"$root/bin/postgres-dev" start "$work/shared/pg" >/dev/null 2>&1 && fail "started through $user's link" || ok
[ "$(ls -A "$precious")" = file ] && ok || fail "root wrote through $user's link: $(ls -A "$precious" | tr '\n' ' ')"
root_files_intact "a link to root's directory"

echo "test_socket_dir_removes_only_sockets_in_a_directory_it_made"
plant_targets sockets
dir=$work/sockets
mkdir -m 0755 "$dir"
echo "$precious" >"$dir/socket-dir"
"$root/bin/socket-dir" --remove "$dir" 2>/dev/null && fail "socket-dir --remove accepted a record naming $precious" || ok
root_files_intact "a socket-dir record naming another directory"
long=$work/$(printf 'l%.0s' {1..110})
short=$("$root/bin/socket-dir" "$long")
[ "${#short}" -le 40 ] && [ "$(stat -c '%U %a' "$short")" = "root 700" ] && ok || fail "short socket directory $short"
"$root/bin/socket-dir" --remove "$long" && [ ! -e "$short" ] && ok || fail "the short socket directory was not removed"
# HAProxy refuses a stats socket path over 97 bytes (it binds NAME.PID.tmp first).
mid=$work/$(printf 'm%.0s' $(seq 1 $((85 - ${#work} - 1))))
sock=$("$root/bin/socket-dir" "$mid")/haproxy.sock
[ "${#sock}" -le 97 ] && ok || fail "HAProxy's socket path $sock is ${#sock} bytes"
"$root/bin/socket-dir" --remove "$mid" || fail "socket-dir --remove $mid"

echo "test_the_replica_streams_with_the_primarys_password"
dir=$work/auth
"$root/bin/postgres-dev" start "$dir" >/dev/null
rurl=$("$root/bin/postgres-replica" start "$dir" "$work/replica" | sed -n 's/^DATABASE_URL=//p')
[ "$(psql -X -At "$rurl" -c 'select status from pg_stat_wal_receiver')" = streaming ] && ok || fail "the replica is not streaming"
as_user psql -X -w -At "postgres://postgres@127.0.0.1:$(port_of "$work/replica")/postgres" -c 'select 1' >/dev/null 2>&1 \
  && fail "a local user connected to the replica without a password" || ok
"$root/bin/postgres-replica" stop "$work/replica"
"$root/bin/postgres-dev" stop "$dir"

echo "test_start_restarts_a_cluster_whose_binary_was_replaced_on_disk"
# A copy of PostgreSQL's bin/ beside links to its lib/ and share/ (the server finds them
# relative to itself), so the test can replace the binary as a package upgrade does.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
major=$(basename "$(dirname "$pgbin")")
fake=$work/pg/usr
mkdir -p "$fake/lib/postgresql/$major" "$fake/share/postgresql"
cp -a "$pgbin" "$fake/lib/postgresql/$major/bin"
ln -s "/usr/lib/postgresql/$major/lib" "$fake/lib/postgresql/$major/lib"
ln -s "/usr/share/postgresql/$major" "$fake/share/postgresql/$major"
export POSTGRES_DEV_PGBIN=$fake/lib/postgresql/$major/bin
dir=$work/upgraded
"$root/bin/postgres-dev" start "$dir" >/dev/null
before=$(runuser -u postgres -- head -n 1 "$dir/data/postmaster.pid")
again=$("$root/bin/postgres-dev" start "$dir" 2>&1 >/dev/null)
[ -z "$again" ] && [ "$(runuser -u postgres -- head -n 1 "$dir/data/postmaster.pid")" = "$before" ] && ok \
  || fail "an unchanged cluster was restarted: $again"
cp "$POSTGRES_DEV_PGBIN/postgres" "$POSTGRES_DEV_PGBIN/postgres.new"
mv -f "$POSTGRES_DEV_PGBIN/postgres.new" "$POSTGRES_DEV_PGBIN/postgres"
said=$("$root/bin/postgres-dev" start "$dir" 2>&1 >/dev/null)
after=$(runuser -u postgres -- head -n 1 "$dir/data/postmaster.pid")
grep -q "restarting the cluster in $dir: its binary .* was replaced on disk" <<<"$said" && ok \
  || fail "start did not say it restarts a cluster running a replaced binary: $said"
[ "$after" != "$before" ] && [ "$(readlink "/proc/$after/exe")" = "$POSTGRES_DEV_PGBIN/postgres" ] && ok \
  || fail "the cluster still runs the replaced binary ($(readlink "/proc/$after/exe"))"
"$root/bin/postgres-dev" stop "$dir"
unset POSTGRES_DEV_PGBIN

echo "test_install_timescaledb_builds_only_the_pinned_tarball"
vendor=$work/vendor
mkdir -p "$vendor/timescaledb-9.9.9"
marker=$work/decoy-ran
printf '#!/bin/sh\ntouch %s\n' "$marker" >"$vendor/timescaledb-9.9.9/bootstrap"
chmod +x "$vendor/timescaledb-9.9.9/bootstrap"
tar -czf "$vendor/timescaledb-9.9.9.tar.gz" -C "$vendor" timescaledb-9.9.9
out=$(TIMESCALEDB_VENDOR_DIR=$vendor TIMESCALEDB_BUILD_DIR=$work/build "$root/bin/install-timescaledb" 2>&1)
[ ! -e "$marker" ] && grep -q "ignoring $vendor/timescaledb-9.9.9.tar.gz" <<<"$out" && ok \
  || fail "the decoy beside no pinned tarball: $out"
echo "test_install_timescaledb_refuses_a_wrong_checksum"
cp "$vendor/timescaledb-9.9.9.tar.gz" "$vendor/timescaledb-2.28.3.tar.gz"
out=$(TIMESCALEDB_VENDOR_DIR=$vendor TIMESCALEDB_BUILD_DIR=$work/build "$root/bin/install-timescaledb" 2>&1) \
  && fail "a tarball with the wrong checksum was accepted: $out" || ok
[ ! -e "$marker" ] && grep -q "refused: .* has SHA-256 .*not TimescaleDB 2.28.3's pinned" <<<"$out" && ok \
  || fail "wrong checksum: $out"
real=$root/../shared/vendor/timescaledb-2.28.3.tar.gz
[ -f "$real" ] || real=/work/shared/vendor/timescaledb-2.28.3.tar.gz
if [ -f "$real" ]; then
  cp "$real" "$vendor/timescaledb-2.28.3.tar.gz"
  printf 'x' >>"$vendor/timescaledb-2.28.3.tar.gz"
  TIMESCALEDB_VENDOR_DIR=$vendor "$root/bin/install-timescaledb" --verify >/dev/null 2>&1 \
    && fail "the real tarball with one byte added was accepted" || ok
  cp "$real" "$vendor/timescaledb-2.28.3.tar.gz"
  out=$(TIMESCALEDB_VENDOR_DIR=$vendor "$root/bin/install-timescaledb" --verify 2>&1) \
    && grep -q "ignoring $vendor/timescaledb-9.9.9.tar.gz" <<<"$out" && ok || fail "the pinned tarball beside the decoy: $out"
  [ ! -e "$marker" ] && ok || fail "the decoy ran"
else
  echo "  (the real TimescaleDB tarball is not here: its checks were skipped)"
fi

echo "root scripts: $passed checks passed, $failed failed"
[ "$failed" = 0 ]
