#!/usr/bin/env bash
# tests/slurm/cluster.sh - a real single-node SLURM cluster for git-slurm's tests
# (Debian 12 / SLURM 22.05, run as root, no systemd needed).
#
#   bash tests/slurm/cluster.sh start    # install missing packages, start the daemons, wait for an idle node
#   bash tests/slurm/cluster.sh status   # rc 0: every daemon runs and the node takes jobs; rc 3 otherwise
#   bash tests/slurm/cluster.sh stop     # cancel all jobs, then stop the daemons this script started
#   bash tests/slurm/cluster.sh restart  # stop + start
#   bash tests/slurm/cluster.sh clean    # stop, then delete the state dir and our /etc/slurm link
#   bash tests/slurm/cluster.sh env      # print `export SLURM_CONF=...`
#
# Always invoke it through `bash`: a fresh clone may not have the exec bit set.
#
# Daemons, in start order, and why each is needed:
#   munged     authentication between all SLURM components (own key and socket, not /etc/munge)
#   mariadbd   storage for slurmdbd (own datadir, 127.0.0.1:13306, so it never meets a system MariaDB)
#   slurmdbd   accounting; without it `sacct` fails, and submitit learns job states ONLY from sacct
#              (a job that dies before writing its result would make `job.result()` hang forever)
#   slurmctld  the controller
#   slurmd     the single compute node
# Each runs in its foreground mode, detached with setsid, output in $STATE_DIR/log. This script
# writes each daemon's PID into $STATE_DIR/run/pids/ and gives every daemon an environment tag;
# `stop` only ever signals PIDs that carry the tag, so it cannot hit anybody else's processes.
#
# Settings (environment variables):
#   GIT_SLURM_CLUSTER_DIR      state dir, default /tmp/git-slurm-cluster. mariadbd runs as user
#                              mysql and must traverse every parent dir: not under a 0700 $HOME.
#   GIT_SLURM_CLUSTER_CPUS     CPUs the node claims (default 8; more than the hardware on purpose,
#                              so that several test jobs run at once)
#   GIT_SLURM_CLUSTER_TIMEOUT  seconds to wait for each daemon to come up (default 60)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # daemons and mariadb-install-db live in /usr/sbin

STATE_DIR="${GIT_SLURM_CLUSTER_DIR:-/tmp/git-slurm-cluster}"
CPUS="${GIT_SLURM_CLUSTER_CPUS:-8}"
TIMEOUT="${GIT_SLURM_CLUSTER_TIMEOUT:-60}"

CLUSTER=gitslurm
PARTITION=debug
# slurmctld checks that it runs on SlurmctldHost, so the node is named after this machine
NODE="$(hostname -s)"
CTLD_PORT=6817
SLURMD_PORT=6818
DBD_PORT=6819
DB_PORT=13306
# Claim all memory but 512 MB. CR_CPU below keeps memory non-consumable, so this is only the
# upper bound for --mem / submitit mem_gb.
MEM_MB=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 - 512 ))

ETC="$STATE_DIR/etc"
RUN="$STATE_DIR/run"
PIDS="$RUN/pids"
LOG="$STATE_DIR/log"
SPOOL="$STATE_DIR/spool"
MUNGE_DIR="$STATE_DIR/munge"
MUNGE_SOCK="$MUNGE_DIR/munge.socket"
DB_DIR="$STATE_DIR/mysql"
SLURM_CONF_FILE="$ETC/slurm.conf"
# Daemons and our own client calls read this; slurmdbd finds slurmdbd.conf next to it.
export SLURM_CONF="$SLURM_CONF_FILE"
# Every daemon gets this variable in its environment, and slurmstepd inherits it from slurmd.
TAG="GIT_SLURM_CLUSTER_TAG=$STATE_DIR"

# Debian packages providing the daemons and clients. slurmdbd pulls in slurm-wlm-mysql-plugin,
# but purging slurmdbd leaves the plugin as an orphan that `apt-get autoremove` may take away
# later; naming it here reinstalls it in that case.
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin mariadb-server)

T0=$(date +%s.%N)
log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (the daemons and apt-get need it)"; }

# ------------------------------------------------------------------------------------ packages
missing_packages() {
  local p status
  for p in "${PACKAGES[@]}"; do
    # dpkg-query fails for a package it has never seen: that just means "not installed"
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || echo "$p"
  done
}

OWN_POLICY=""
drop_own_policy() { if [ -n "$OWN_POLICY" ]; then rm -f "$OWN_POLICY"; OWN_POLICY=""; fi; }

install_packages() {
  local missing t apt_log="$LOG/apt.log"
  mapfile -t missing < <(missing_packages)
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  t=$(date +%s.%N)
  log "installing ${missing[*]} (log: $apt_log)"
  # The packages' maintainer scripts would start system-wide munge/mariadb/slurm services through
  # invoke-rc.d. A policy-rc.d that exits 101 denies that. Debian container images (and this VM)
  # ship one; otherwise we create it just for this install and remove it afterwards.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    OWN_POLICY=/usr/sbin/policy-rc.d
    trap drop_own_policy EXIT
    printf '#!/bin/sh\nexit 101\n' > "$OWN_POLICY"
    chmod 755 "$OWN_POLICY"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the lists first: in a CI image they are often absent, or stale and naming .debs
  # that the mirror no longer has. Only done when something is missing, so warm starts stay fast.
  if ! apt-get update >"$apt_log" 2>&1; then
    log "WARNING: apt-get update failed; trying the install with the package lists we have"
  fi
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    die "apt-get install failed (log: $apt_log)"
  fi
  drop_own_policy
  log "packages installed in $(elapsed "$t")s"
}

# ---------------------------------------------------------------------------- process helpers
# pid_alive PID [PROGRAM]: the process exists and is not a zombie, and runs PROGRAM if given.
# The zombie check matters here: PID 1 may reap late, and `kill -0` succeeds on a zombie.
pid_alive() {
  local pid="$1" want="${2:-}" state exe
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  # the state is the first field after the last ')' (the command name may contain spaces)
  state=$(sed -e 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  case "$state" in Z|X|x|"") return 1 ;; esac
  [ -z "$want" ] && return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  # Debian's /usr/sbin/slurmctld, slurmd are alternatives links to slurmctld-wlm, slurmd-wlm
  case "${exe##*/}" in "$want"|"$want-wlm") return 0 ;; *) return 1 ;; esac
}
# has_env PID VAR=VALUE: the process's environment contains exactly that entry. grep -z reads
# the NUL-separated file directly (a `tr | grep -q` pipe could fail on SIGPIPE under pipefail).
# The process may exit while we look: unreadable means "no".
has_env() { grep -qxzF -- "$2" "/proc/$1/environ" 2>/dev/null; }
# has_env_var PID VAR: the process's environment defines VAR
has_env_var() { grep -qzE -- "^$2=" "/proc/$1/environ" 2>/dev/null; }

daemon_pid() { # NAME -> its PID on stdout, if it runs, is that program and carries our tag
  local name="$1" pid=""
  [ -s "$PIDS/$name" ] && pid=$(tr -dc '0-9' < "$PIDS/$name")
  if pid_alive "$pid" "$name" && has_env "$pid" "$TAG"; then echo "$pid"; fi
}

# PIDs of this process and its ancestors, so `stop` never kills whoever called it
ancestors() {
  local p=$$
  while [ "$p" -gt 1 ]; do echo "$p"; p=$(ps -o ppid= -p "$p" | tr -d ' '); done
}

# Leftovers after the daemons are gone: processes with our tag (slurmstepd, slurmscriptd, ...)
# and everything below them, plus job processes orphaned by a crashed slurmstepd. The latter are
# recognised by SLURM_JOB_ID together with SLURM_CONF=<our conf>, which slurmstepd sets in
# every job's environment.
leftover_pids() {
  local me tagged=() pid
  me=" $(ancestors | tr '\n' ' ') "
  for pid in $(pids_with_env "$TAG"); do
    case "$me" in *" $pid "*) continue ;; esac
    tagged+=("$pid")
    echo "$pid"
  done
  for pid in $(pids_with_env "SLURM_CONF=$SLURM_CONF_FILE"); do
    case "$me" in *" $pid "*) continue ;; esac
    if has_env_var "$pid" SLURM_JOB_ID; then echo "$pid"; fi
  done
  if [ ${#tagged[@]} -gt 0 ]; then
    # descendants of the tagged processes: walk the parent links of a single ps snapshot
    # (skipping our own ancestors, in case `stop` runs inside a job)
    ps -e -o pid=,ppid= | awk -v roots=" ${tagged[*]} " -v me="$me" '
      { parent[$1] = $2 }
      END {
        for (p in parent) {
          if (index(me, " " p " ")) continue
          for (q = parent[p]; q > 1; q = parent[q]) if (index(roots, " " q " ")) { print p; break }
        }
      }'
  fi
}

# pids_with_env VAR=VALUE: live processes whose environment has that entry. One grep over all
# /proc/*/environ files keeps this fast (a loop forking per process took ~0.8 s). grep exits 1
# when nothing matches and 2 when a process vanished between the glob and the read; both are
# normal here, so its status is not checked.
pids_with_env() {
  local f pid
  for f in $(grep -lzxF -- "$1" /proc/[0-9]*/environ 2>/dev/null || true); do
    pid=${f#/proc/}
    pid=${pid%/environ}
    if pid_alive "$pid"; then echo "$pid"; fi
  done
}

# terminate GRACE PID...: SIGTERM, wait up to GRACE seconds, then SIGKILL whatever is left
terminate() {
  local grace="$1" p alive deadline
  shift
  [ $# -eq 0 ] && return 0
  # a PID may have exited between listing and signalling: that is the outcome we want
  kill -TERM "$@" 2>/dev/null || true
  deadline=$(( $(date +%s) + grace ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    alive=()
    for p in "$@"; do if pid_alive "$p"; then alive+=("$p"); fi; done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  log "SIGKILL for $*"
  kill -KILL "$@" 2>/dev/null || true
}

# start_daemon NAME COMMAND...: run detached (setsid: own session, so a Ctrl-C in the caller's
# terminal doesn't reach it), tagged, stdio to a log file, and record its PID. In a script (no
# job control) a background job is not a process group leader, so setsid does not fork again
# and $! is the daemon itself.
start_daemon() {
  local name="$1"
  shift
  env "$TAG" setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
  echo $! > "$PIDS/$name"
  STARTED_PID=$!
}

# wait_until WHAT DAEMON COMMAND...: poll COMMAND until it succeeds. Fails after $TIMEOUT seconds,
# or at once (with the daemon's output) if DAEMON exited meanwhile, instead of waiting in vain.
wait_until() {
  local what="$1" daemon="$2" deadline
  shift 2
  deadline=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$STARTED_PID"; then
      log "$daemon exited while we waited for $what; end of $LOG/$daemon.out:"
      tail -n 20 "$LOG/$daemon.out" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${TIMEOUT}s waiting for $what"
      return 1
    fi
    sleep 0.1
  done
}

# ------------------------------------------------------------------------------------ configs
slurm_conf() {
  cat <<EOF
# Generated by tests/slurm/cluster.sh on every start; edit the script, not this file.
ClusterName=$CLUSTER
# explicit address: no DNS lookup of the host name needed
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# no cgroups (CI containers rarely have writable ones): track job processes through /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# the default mailer does not exist here; slurmctld logs an error for every job without this
MailProg=/bin/true
SelectType=select/cons_tres
# CPUs are the only consumable resource. With CR_CPU_Memory and no DefMemPerCPU every job
# without --mem takes the whole node's memory, so only one job would run at a time.
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule a submitted job on slurmctld's next 1 s tick (default: up to 3 s later), and run a full
# pass every 2 s (default 60 s) so that --begin and released jobs start promptly.
SchedulerParameters=sched_interval=2,batch_sched_delay=0
# SIGTERM -> SIGKILL grace on scancel/timeout. submitit's job process ignores SIGTERM, so with the
# default 30 s a cancelled submitit job blocks its CPUs for half a minute.
KillWait=5
# A node that went DOWN (e.g. slurmd restarted) returns to service by itself when it registers.
ReturnToService=2
# Reject impossible requests (say 9 CPUs on this 8-CPU node) at sbatch time; otherwise they stay
# PENDING forever and whatever waits for them (submitit, the Hydra launcher) hangs.
EnforcePartLimits=ALL
# Let the node claim more CPUs than the hardware has (CPUs=$CPUS below); without this slurmd
# reports the real count and the node becomes INVAL.
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Connections to slurmdbd ignore AuthInfo and take the munge socket from this option instead.
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
  cat <<EOF
# Generated by tests/slurm/cluster.sh. slurmdbd has no -f option: it reads this file from the
# directory of \$SLURM_CONF, and insists on mode 0600 and ownership by SlurmUser.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
}

my_cnf() {
  cat <<EOF
# Generated by tests/slurm/cluster.sh: a private MariaDB for slurmdbd only.
[mysqld]
user=mysql
datadir=$DB_DIR/data
socket=$DB_DIR/mariadbd.sock
# mariadbd writes these after dropping to user mysql, so they go into its own directory
pid-file=$DB_DIR/mariadbd.pid
log-error=$DB_DIR/mariadbd.err
bind-address=127.0.0.1
port=$DB_PORT
skip-name-resolve
skip-log-bin
# slurmdbd logs "Database settings not recommended values" below 1 GB; the memory is reserved
# lazily, so this costs little in practice
innodb_buffer_pool_size=1024M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
# test data: no need to flush to disk on every commit
innodb_flush_log_at_trx_commit=2
[client]
socket=$DB_DIR/mariadbd.sock
user=root
EOF
}

# write_config FILE MODE GENERATOR: (re)write FILE only when its content changes, so that `start`
# can tell "already running with this config" from "running with an outdated config".
CONF_CHANGED=0
write_config() {
  local file="$1" mode="$2" generator="$3" tmp
  tmp=$(mktemp "$file.XXXXXX")
  "$generator" > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$file"
    CONF_CHANGED=1
  fi
}

# Clients (sbatch, squeue, sacct, submitit inside pytest) read /etc/slurm/slurm.conf when
# SLURM_CONF is unset. Point it at our config, but never replace a real file someone else owns.
link_etc() {
  mkdir -p /etc/slurm
  if [ -L /etc/slurm/slurm.conf ] || [ ! -e /etc/slurm/slurm.conf ]; then
    ln -sfn "$SLURM_CONF_FILE" /etc/slurm/slurm.conf
  else
    log "WARNING: /etc/slurm/slurm.conf is a regular file, left alone; clients need: export SLURM_CONF=$SLURM_CONF_FILE"
  fi
}

# ------------------------------------------------------------------------------------- status
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

# empty output means "no answer from slurmctld (yet)", which callers treat as not ready
node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1 || true; }
# A node that takes jobs. "comp" (jobs still completing) and any suffix (* = not responding,
# ~ = powered down, ...) are not ready.
node_usable() { case "$(node_state)" in idle|mix|alloc) return 0 ;; *) return 1 ;; esac; }
# slurmd has registered with slurmctld, whether or not the node can take jobs yet
node_registered() { case "$(node_state)" in ""|unk*|*'*') return 1 ;; *) return 0 ;; esac; }

all_daemons_up() {
  local d
  for d in "${DAEMONS[@]}"; do [ -n "$(daemon_pid "$d")" ] || return 1; done
}

cmd_status() {
  local d pid rc=0
  if [ "$(id -u)" = 0 ]; then
    for d in "${DAEMONS[@]}"; do
      pid=$(daemon_pid "$d")
      if [ -n "$pid" ]; then
        printf '%-10s running (pid %s)\n' "$d" "$pid"
      else
        printf '%-10s not running\n' "$d"
        rc=3
      fi
    done
  else
    # /proc/PID/environ of root's daemons is unreadable, so the tag cannot be checked
    echo "not root: checking the node state only"
  fi
  if ! command -v sinfo >/dev/null; then
    echo "SLURM clients not installed (run: bash $0 start)"
    rc=3
  elif node_usable; then
    echo "node $NODE: $(node_state)"
  else
    echo "node $NODE: not usable (state: '$(node_state)')"
    rc=3
  fi
  echo "SLURM_CONF=$SLURM_CONF_FILE"
  return $rc
}

# --------------------------------------------------------------------------------------- stop
# Cancel every job while slurmctld and slurmd still run, so that slurmstepd ends the job
# processes cleanly. slurmstepd is re-parented to PID 1, so stopping slurmd alone would leave
# running jobs behind.
cancel_all_jobs() {
  local jobs deadline
  jobs=$(squeue -h -o %A) || { log "WARNING: squeue failed; cannot cancel jobs cleanly"; return 0; }
  [ -z "$jobs" ] && return 0
  log "cancelling jobs: ${jobs//$'\n'/ }"
  # shellcheck disable=SC2086  # one word per job id
  scancel $jobs
  # KillWait=5 plus a margin for the epilog
  deadline=$(( $(date +%s) + 15 ))
  while [ -n "$(squeue -h -o %A)" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "WARNING: jobs still listed after 15s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
      return 0
    fi
    sleep 0.2
  done
}

cmd_stop() {
  need_root
  local d pid leftovers
  if [ -n "$(daemon_pid slurmctld)" ] && [ -n "$(daemon_pid slurmd)" ]; then
    cancel_all_jobs
  fi
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    pid=$(daemon_pid "$d")
    [ -n "$pid" ] || continue
    log "stopping $d (pid $pid)"
    terminate 10 "$pid"
  done
  mapfile -t leftovers < <(leftover_pids | sort -un)
  if [ ${#leftovers[@]} -gt 0 ]; then
    log "ending leftover processes of this cluster: ${leftovers[*]}"
    # slurmstepd ignores SIGTERM, hence the short grace before SIGKILL
    terminate 2 "${leftovers[@]}"
  fi
  rm -f "$PIDS"/*
  log "stopped"
}

# -------------------------------------------------------------------------------------- start
munge_round_trip() { munge -S "$MUNGE_SOCK" -n </dev/null | unmunge -S "$MUNGE_SOCK"; }

start_munged() {
  mkdir -p "$MUNGE_DIR"
  # munged refuses a socket dir that others cannot traverse, and a key not owned by root / not 0600
  chmod 755 "$MUNGE_DIR"
  if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    mungekey --create --keyfile="$MUNGE_DIR/munge.key"
  fi
  chown root:root "$MUNGE_DIR/munge.key"
  chmod 600 "$MUNGE_DIR/munge.key"
  start_daemon munged munged --foreground --socket="$MUNGE_SOCK" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
  wait_until "a munge round trip" munged munge_round_trip || die "munged did not start"
}

start_mariadbd() {
  mkdir -p "$DB_DIR"
  # recursive: after a purge and reinstall of mariadb-server the mysql user may have a new uid
  chown -R mysql:mysql "$DB_DIR"
  chmod 755 "$DB_DIR"
  if [ ! -d "$DB_DIR/data/mysql" ]; then
    rm -rf "$DB_DIR/data"
    mariadb-install-db --defaults-file="$ETC/my.cnf" --skip-test-db \
      --auth-root-authentication-method=socket >"$LOG/mariadb-install-db.log" 2>&1 \
      || { tail -n 20 "$LOG/mariadb-install-db.log" >&2; die "mariadb-install-db failed"; }
  fi
  start_daemon mariadbd mariadbd --defaults-file="$ETC/my.cnf"
  wait_until "MariaDB to answer" mariadbd mariadb-admin --defaults-file="$ETC/my.cnf" ping \
    || { tail -n 20 "$DB_DIR/mariadbd.err" >&2; die "mariadbd did not start"; }
  mariadb --defaults-file="$ETC/my.cnf" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
    || die "could not create the accounting database"
}

start_slurmdbd() {
  start_daemon slurmdbd slurmdbd -D
  # slurmctld registers the cluster in slurmdbd by itself; no sacctmgr setup needed
  wait_until "slurmdbd to answer" slurmdbd sacctmgr -n -P show cluster \
    || { tail -n 20 "$LOG/slurmdbd.log" >&2; die "slurmdbd did not start"; }
}

start_slurmctld() {
  # -i: start even if a state file is unreadable (e.g. after a crash) instead of refusing.
  # Job state survives stop/start, so job ids keep increasing.
  start_daemon slurmctld slurmctld -D -i
  wait_until "slurmctld to answer" slurmctld scontrol ping \
    || { tail -n 20 "$LOG/slurmctld.log" >&2; die "slurmctld did not start"; }
}

start_slurmd() {
  local stale
  start_daemon slurmd slurmd -D -N "$NODE"
  wait_until "slurmd to register" slurmd node_registered \
    || { tail -n 20 "$LOG/slurmd.log" >&2; die "slurmd did not register"; }
  # Jobs still known now come from a run that did not end with `stop` (their processes are gone).
  # Left alone, they would hold CPUs as RUNNING ghosts.
  stale=$(squeue -h -o %A)
  if [ -n "$stale" ]; then
    log "cancelling jobs left over from an earlier run: ${stale//$'\n'/ }"
    # shellcheck disable=SC2086  # one word per job id
    scancel $stale
  fi
  if ! wait_until "node $NODE to become idle" slurmd node_usable; then
    # a node left DOWN or DRAINED by an earlier crash: resume it once, then insist
    log "node state '$(node_state)'; resuming it"
    scontrol update NodeName="$NODE" State=RESUME
    wait_until "node $NODE to become idle" slurmd node_usable \
      || { sinfo -R >&2; tail -n 20 "$LOG/slurmd.log" >&2; die "node $NODE is not usable"; }
  fi
}

# run_step NAME FUNCTION: run one start step and log how long it took
run_step() {
  local t
  t=$(date +%s.%N)
  "$2"
  log "$1 up ($(elapsed "$t")s)"
}

cmd_start() {
  need_root
  mkdir -p "$ETC" "$PIDS" "$LOG" "$SPOOL/slurmctld" "$SPOOL/slurmd"
  # mariadbd (user mysql) must traverse the state dir to reach its datadir
  chmod 755 "$STATE_DIR"
  install_packages

  write_config "$SLURM_CONF_FILE" 644 slurm_conf
  write_config "$ETC/slurmdbd.conf" 600 slurmdbd_conf
  write_config "$ETC/my.cnf" 644 my_cnf
  link_etc

  if all_daemons_up && node_usable; then
    if [ "$CONF_CHANGED" = 0 ]; then
      log "already running, node $NODE is $(node_state)"
      return 0
    fi
    log "configuration changed: restarting"
  fi
  # Partly running (a crash, a config change): stop what is ours and start everything in order.
  if [ -n "$(leftover_pids)" ]; then
    cmd_stop
  fi

  run_step munged start_munged
  run_step mariadbd start_mariadbd
  run_step slurmdbd start_slurmdbd
  run_step slurmctld start_slurmctld
  run_step slurmd start_slurmd
  sinfo
  log "cluster ready in $(elapsed "$T0")s; logs in $LOG"
}

cmd_clean() {
  need_root
  cmd_stop
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null || true)" = "$SLURM_CONF_FILE" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
  case "$STATE_DIR" in /|/tmp|/var|/var/lib|/root|/home|"") die "refusing to delete '$STATE_DIR'" ;; esac
  rm -rf "$STATE_DIR"
  log "removed $STATE_DIR"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  env) echo "export SLURM_CONF=$SLURM_CONF_FILE" ;;
  *) echo "usage: bash $0 {start|stop|restart|status|clean|env}" >&2; exit 2 ;;
esac
