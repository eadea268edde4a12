"""The environment's /init and the udhcpc script, as text written into the
initramfs.  Both run under busybox ash.

/init mounts proc, sysfs, devtmpfs, devpts and tmpfs; loads the modules
listed in /etc/bootdisk/modules (in dependency order, made by bootdisk);
brings every NIC up by DHCP; takes the job from ``rd.job=URL`` on the kernel
command line (fetched with wget) or /etc/bootdisk/job; runs it with the
toolkit on PATH; prints one line with the job's exit status; and powers off,
reboots or starts a shell as /etc/bootdisk/config (or ``rd.on_success=`` /
``rd.on_failure=`` on the command line) asks.  Everything it and the job
print goes to every console in /proc/consoles (screen and serial) and to
/run/bootdisk.log.

A PXE boot of `pxeconf serve` puts ``rd.pxeconf=URL rd.pxeconf.lease=ID``
on the command line: then the job runs under its lease.  /init fetches
the job and reports ``started`` in one ``pxeconf report started
--fetch=/run/job`` (the fetch tried 5 times, 1 to 8 s apart; a job not
fetched is reported ``failed``); without the job, or without the server's
acknowledgement, the job does not run (one line says so) and the failure
action follows.  The job's output goes through ``pxeconf report relay``
(every line passed on to the consoles; rdeploy's --progress=json lines
and the log tail forwarded), and its end is reported as ``done`` or
``failed`` with the exit status and the tail of /run/bootdisk.log.
Without rd.pxeconf= nothing of this happens.

A boot from a service partition (bwpart) puts ``rd.bwpart=ID`` on the
command line: then the job is ``bwpart service-boot ID`` (the partition's
pending job, diskimage/service/serviceboot.py), before rd.pxeconf= and
rd.job=; its exit status is the job's.
"""

INIT = r"""#!/bin/sh
# /init of the bootdisk environment, written by `bootdisk`.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root TERM=linux TMPDIR=/tmp
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
exec </dev/console >/dev/console 2>&1

CONSOLES=""
while read -r name rest; do
    [ -c "/dev/$name" ] && CONSOLES="$CONSOLES /dev/$name"
done </proc/consoles
[ -n "$CONSOLES" ] || CONSOLES=/dev/console

say() {
    for c in $CONSOLES; do echo "bootdisk: $*" >"$c"; done
    echo "bootdisk: $*" >>/run/bootdisk.log
}

uptime_s() { read -r up rest </proc/uptime; echo "$up"; }

ON_SUCCESS=poweroff
ON_FAILURE=shell
JOB=
[ -f /etc/bootdisk/config ] && . /etc/bootdisk/config
JOB_URL=
PXECONF_URL=
BWPART=
for word in $(cat /proc/cmdline); do
    case "$word" in
        rd.job=*) JOB_URL="${word#rd.job=}" ;;
        rd.pxeconf=*) PXECONF_URL="${word#rd.pxeconf=}" ;;
        rd.bwpart=*) BWPART="${word#rd.bwpart=}" ;;
        rd.on_success=*) ON_SUCCESS="${word#rd.on_success=}" ;;
        rd.on_failure=*) ON_FAILURE="${word#rd.on_failure=}" ;;
    esac
done

setup() {
    hostname bootdisk
    ip link set lo up
    say "environment $(cat /etc/bootdisk/version 2>/dev/null), kernel $(uname -r), up $(uptime_s) s"
    release=$(uname -r)
    loaded=0
    if [ -f /etc/bootdisk/modules ]; then
        while read -r path; do
            insmod "/lib/modules/$release/$path" 2>/dev/null && loaded=$((loaded + 1))
        done </etc/bootdisk/modules
    fi
    say "loaded $loaded modules"
    # Disks probe asynchronously (USB, SCSI): give them a moment to appear.
    tries=0
    while [ $tries -lt 20 ]; do
        ls /sys/block | grep -qvE '^(ram|loop)' && break
        sleep 0.1; tries=$((tries + 1))
    done
    for dev in /sys/class/net/*; do
        nic=${dev##*/}
        [ "$nic" = lo ] && continue
        [ -e "$dev/device" ] || continue
        ip link set "$nic" up
        if udhcpc -i "$nic" -n -q -t 4 -T 2 -s /etc/bootdisk/udhcpc.script >/dev/null 2>&1; then
            say "network: $nic $(ip -4 -o addr show dev "$nic" | awk '{print $4}')"
        else
            say "network: $nic has no DHCP answer"
        fi
    done
}

fetch_job() {
    if [ -n "$JOB_URL" ]; then
        say "fetching job $JOB_URL"
        if ! wget -q -O /run/job "$JOB_URL"; then
            say "cannot fetch the job from $JOB_URL"
            return 1
        fi
        JOB=/run/job
    fi
    if [ -z "$JOB" ] || [ ! -f "$JOB" ]; then
        say "no job given (--job or rd.job=URL)"
        return 1
    fi
}

run_job() {
    say "running job $JOB (up $(uptime_s) s)"
    (cd /tmp && exec sh "$JOB" </dev/null)
}

# The job under its lease (rd.pxeconf=): fetched first (tried again
# while the server or the link is not there yet; a job not fetched is
# reported failed), then no acknowledged start, no job.
run_leased() {
    say "reporting to $PXECONF_URL"
    fetch=
    if [ -n "$JOB_URL" ]; then
        say "fetching job $JOB_URL"
        fetch=--fetch=/run/job
    fi
    if ! pxeconf report started $fetch; then
        say "no job fetched, or its start not acknowledged: the job does not run"
        return 1
    fi
    if [ -n "$fetch" ]; then
        JOB=/run/job JOB_URL=
    fi
    if fetch_job; then
        { run_job 2>&1; echo $? >/run/job.rc; } | { pxeconf report relay || cat; }
        rc=$(cat /run/job.rc 2>/dev/null || echo 1)
    else
        rc=1
    fi
    if [ "$rc" = 0 ]; then
        pxeconf report done --exit=0 --log=/run/bootdisk.log ||
            say "the server did not acknowledge done: the job may run again at the next boot"
    else
        pxeconf report failed --exit="$rc" --log=/run/bootdisk.log ||
            say "the server did not acknowledge failed"
    fi
    return "$rc"
}

main() {
    setup
    rc=1
    if [ -n "$BWPART" ]; then
        # A service boot (bwpart): the pending job on the service partition.
        say "service partition $BWPART (up $(uptime_s) s)"
        bwpart service-boot "$BWPART" </dev/null
        rc=$?
    elif [ -n "$PXECONF_URL" ]; then
        run_leased
        rc=$?
    elif fetch_job; then
        run_job
        rc=$?
    fi
    echo "$rc" >/run/bootdisk.rc
}

main 2>&1 | tee -a /run/bootdisk.log $CONSOLES >/dev/null
rc=$(cat /run/bootdisk.rc 2>/dev/null || echo 1)
if [ "$rc" = 0 ]; then
    say "job finished: exit 0 (up $(uptime_s) s)"
    action=$ON_SUCCESS
else
    say "job FAILED: exit $rc (up $(uptime_s) s)"
    action=$ON_FAILURE
fi

sync
case "$action" in
    reboot) say "rebooting"; reboot -f ;;
    shell) ;;
    *) say "powering off"; poweroff -f ;;
esac
say "starting a shell; 'poweroff -f' or 'reboot -f' to leave"
while true; do
    setsid cttyhack sh -l
done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
# udhcpc event script of the bootdisk environment.
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
        if [ -n "$router" ]; then
            while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
            for r in $router; do
                route add default gw "$r" dev "$interface"
                break
            done
        fi
        : >/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
        ;;
esac
exit 0
"""
