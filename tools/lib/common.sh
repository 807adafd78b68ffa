# shellcheck shell=bash
# What tools/cloud, tools/lxd-testbed and tools/build-debian-image share:
# logging, the state-folder guard, "is this pid ours", inherited
# descriptors, port probes and apt installs.
#
# Source it with PROG set to the program's name (the prefix of its
# messages); nothing runs on sourcing.

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# close_inherited_fds: close every descriptor above stderr but bash's own
# script descriptor. For what outlives us (a daemon must not hold our
# caller's lock or pipes: a CI runner reading our output would wait for
# ever) or cannot bear them (mmdebstrap).
close_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ]; then
            eval "exec $fd>&-"
        fi
    done
}

# state_dir PATH WHAT: PATH made absolute, without a trailing slash. Dies
# for a folder that must never be one (the callers run rm -rf on it) and
# for one with whitespace, quotes or backslashes (it goes into configs).
# WHAT names the setting, for the message.
state_dir() {
    local dir=$1 what=$2
    case $dir in
        /*) ;;
        *) dir=$(realpath -m -- "$dir") ;;
    esac
    dir=${dir%/}
    case $dir in
        "" | / | /bin | /boot | /dev | /etc | /home | /lib* | /proc | /root | /run | /sbin | /sys | /tmp | /usr | /var | /var/lib)
            die "refusing to use '${dir:-/}' as $what" ;;
        *[[:space:]\'\\\"]*)
            die "$what must not contain whitespace, quotes or backslashes: $dir" ;;
    esac
    printf '%s\n' "$dir"
}

# --------------------------------------------------------------------------
# Processes we started. A pid file holds "PID START": START is the
# process's start time (field 22 of /proc/PID/stat), so that a pid the
# kernel gave to another process since is never taken for ours. (Not the
# environment or command line: programs such as gunicorn rewrite what
# /proc shows of them.)

# Field $2 of /proc/$1/stat counted after the command name (which may hold
# spaces): 1 is the state, 20 the start time.
proc_stat_field() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v f="$2" '{print $f}'
}

# pid_write FILE PID: remember PID (just started by us) in FILE.
pid_write() {
    printf '%s %s\n' "$2" "$(proc_stat_field "$2" 20)" >"$1"
}

# pid_ours FILE: print the pid FILE names when that process still runs
# (not a zombie) and is the one we started; fail otherwise.
pid_ours() {
    local pid since state
    [ -r "$1" ] || return 1
    read -r pid since <"$1" || return 1
    [[ $pid =~ ^[0-9]+$ ]] && [ -n "$since" ] || return 1
    state=$(proc_stat_field "$pid" 1)
    [ -n "$state" ] && [ "$state" != Z ] || return 1
    [ "$(proc_stat_field "$pid" 20)" = "$since" ] || return 1
    echo "$pid"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# --------------------------------------------------------------------------
# apt_install PKG...: install Debian packages (as root, with apt-get),
# holding back the system-wide daemons their init scripts would start
# (we run our own, in our state folders) unless the machine already has a
# policy-rc.d. apt's output goes to stdout/stderr; fails as apt-get does.
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing $*; run as root so that I can install them (apt-get)"
    command -v apt-get >/dev/null ||
        die "missing $* and this is not an apt-based system (Debian/Ubuntu); install them by hand"
    local policy=/usr/sbin/policy-rc.d added='' rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
        # shellcheck disable=SC2064  # expand now: remove exactly this file
        trap "rm -f '$policy'" EXIT
    fi
    {
        apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    } || rc=$?
    if [ -n "$added" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
    return "$rc"
}

# deb_missing PKG...: print the packages dpkg does not have installed.
deb_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || echo "$p"
    done
}
