#!/bin/bash
# tests/iscsi/guest.sh RESULTS [PYTEST ARGS...]: the iSCSI lane's guest side. Runs as root
# inside the qemu guest that tests/plugins/iscsi_guest.py boots (virtme-ng: the host's root
# filesystem read-only over 9p, RESULTS writable, /etc and /usr/local/bin writable overlays
# whose changes stay in the guest; no network device: all traffic on the guest's loopback).
# Sets up what a glance-api host with an iSCSI initiator has (udev, iscsid, glance's
# rootwrap configuration, sudo), the kernel's iSCSI target for the simulator, then runs the
# guest-only cases (tests/iscsi/guest) with the checkout's .venv; junit XML into RESULTS.
set -u
RESULTS=$1
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec >"$RESULTS/guest.log" 2>&1
step() { printf '%s guest: %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*"; }

step "loopback portals 127.0.0.1 and 127.0.0.2"
ip link set lo up
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true

step "udev (makes /dev/disk/by-path, which os-brick waits for)"
if ! udevadm control --ping 2>/dev/null; then  # virtme-ng's init usually started it
    mkdir -p /run/udev
    /lib/systemd/systemd-udevd --daemon
    udevadm trigger
fi
udevadm settle -t 30

step "kernel modules: initiator, multipath, target"
modprobe -a iscsi_tcp dm_multipath target_core_file iscsi_target_mod
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config

step "a private /tmp (os-brick's privsep socket goes there)"
mountpoint -q /tmp || mount -t tmpfs -o size=1536m,mode=1777 tmpfs /tmp

step "glance's configuration and rootwrap, as on a glance-api host"
mkdir -p /etc/glance/rootwrap.d
cp "$ROOT/etc/glance/rootwrap.conf" /etc/glance/rootwrap.conf
cp "$ROOT/etc/glance/rootwrap.d/images.filters" /etc/glance/rootwrap.d/
# os-brick's connect/disconnect take oslo.concurrency's external locks from glance's CONF.
mkdir -p /tmp/glance-lock
printf '[DEFAULT]\n[oslo_concurrency]\nlock_path = /tmp/glance-lock\n' >/etc/glance/glance-api.conf
ln -sf "$ROOT/.venv/bin/glance-rootwrap" "$ROOT/.venv/bin/privsep-helper" /usr/local/bin/
if [ ! -s /etc/iscsi/initiatorname.iscsi ]; then
    echo "InitiatorName=$(iscsi-iname)" >/etc/iscsi/initiatorname.iscsi
fi

step "iscsid (a failed path gives its I/O back after 5 s, as multipath hosts set it)"
sed -i 's/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = 5/' \
    /etc/iscsi/iscsid.conf
iscsid

step "pytest tests/iscsi/guest"
cd "$ROOT" || exit 1
export DATERA_GLANCE_ISCSI_GUEST=1 PYTHONDONTWRITEBYTECODE=1 DATERA_GLANCE_REQUIRE_EXTENSIONS=1
# Each case logs as it goes (the log is all there is if the guest is killed); 300 s per case.
"$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider -v --junitxml="$RESULTS/junit.xml" \
    --timeout=300 -o log_cli=true --log-cli-level=INFO tests/iscsi/guest "$@"
rc=$?
step "pytest exit status $rc"
iscsiadm -m session
dmesg | tail -60
echo "$rc" >"$RESULTS/pytest.rc"
