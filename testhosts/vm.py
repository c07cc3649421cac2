"""A full VM test host (qemu, software emulation) for what nspawn hosts cannot enforce.

systemd-nspawn hosts get no cgroup controllers, so MemoryMax=, TasksMax= and CPUQuota=
are configured there but never bite. A qemu VM with TCG (the paravirtual /dev/kvm here
cannot boot stock Debian kernels) runs its own kernel and systemd, with every controller.

- Image: the nspawn image plus linux-image-amd64, packed into a raw ext4 disk with
  `mkfs.ext4 -d` (no loop mounts), with the kernel and initrd beside it; cached.
- Run: `run(files)` boots it with the disk as a throw-away snapshot and a second, read-only
  disk holding FILES; at boot a unit mounts that disk and runs its `run.sh`, whose output
  goes to the serial console (our stdout), then powers off. `-nic none`: no network at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from testhosts import image, paths
from testhosts.log import say

VM_REVISION = "3"
# Installed into the VM image at build time. The kernel boots it; the rest is what the
# sandbox probes (tests/sandbox/test_vm_limits.py) run on directly, with no converge and no
# apt repository in the VM: coreutils' sleep for the fork bomb (Essential, listed for
# clarity), iproute2 and kmod for the dummy interface holding the addresses the game unit's
# network probe must not reach, and libbpf1, which the game_host role installs because
# systemd silently drops SocketBindAllow=/Deny= without it. The VM is a fixture for limits,
# not a stand-in for a fresh server.
VM_PACKAGES = ("linux-image-amd64", "initramfs-tools", "coreutils", "iproute2", "kmod",
               "libbpf1")
DISK_SIZE = "3G"
MEMORY_MB = 1024
# One emulated CPU: one host thread for the whole VM, so the lane costs one of CI's two cores
# while the molecule lanes run beside it, and the guest scheduler has no CPU to migrate or
# balance between (the 2026-11-27 oops was in the CFS's dequeue_entity with 2 vCPUs; see
# docs/testing-vm.md for the runs). A busy loop still shows CPUQuota=20% against 100%.
VCPUS = 1
# Emulated (TCG) boot plus every probe: ~3 min on an idle machine, 12 min measured beside
# other helpers' molecule runs (load 13 on 2 cores). A guest kernel oops ends the VM at once
# (oops=panic panic=-1 below), so this only catches a true hang.
BOOT_AND_RUN_TIMEOUT = 1800.0
# What a guest kernel oops or panic prints first (the console keeps the whole text).
OOPS_MARKERS = ("Oops:", "BUG: ", "Kernel panic", "general protection fault")


class GuestKernelOops(RuntimeError):
    """The guest kernel oopsed: the probes' results are lost, the oops text is the message."""

# Runs the probe disk's run.sh at boot, output on the serial console, then powers off.
PROBE_UNIT = """\
[Unit]
Description=left4me VM probe: run /dev/vdb's run.sh and power off
ConditionPathExists=/dev/vdb
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /run/probe && mount -o ro /dev/vdb /run/probe && \
echo LEFT4ME-VM-PROBE-START && sh /run/probe/run.sh; echo LEFT4ME-VM-PROBE-END rc=$?'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStopPost=/bin/systemctl poweroff --no-block

[Install]
WantedBy=multi-user.target
"""


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def vm_key() -> str:
    recipe = "\n".join([image.image_key(), VM_REVISION, PROBE_UNIT, *VM_PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def vm_dir() -> Path:
    # Never named `vm-*`: older harness code deletes those as stale.
    return paths.cache_dir() / f"bare-vm-{vm_key()}"


def ensure_vm_image() -> Path:
    """Directory with disk.img, vmlinuz and initrd.img; built on first use (~1-2 min)."""
    target = vm_dir()
    if (target / "disk.img").exists():
        return target
    started = time.monotonic()
    say("building the VM image (nspawn image + linux-image-amd64)...")
    tarball = image.ensure_image()
    with tempfile.TemporaryDirectory(dir=paths.cache_dir(), prefix="bare-vm-build-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        image.unpack(tarball, rootfs)
        _install_kernel(rootfs)
        _customise(rootfs)
        partial = Path(scratch) / "out"
        partial.mkdir()
        shutil.copy(_newest(rootfs / "boot", "vmlinuz-*"), partial / "vmlinuz")
        shutil.copy(_newest(rootfs / "boot", "initrd.img-*"), partial / "initrd.img")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs),
                        str(partial / "disk.img"), DISK_SIZE], check=True)
        for stale in paths.cache_dir().glob("bare-vm-*"):
            building = stale.name.startswith("bare-vm-build-")  # another build's scratch
            if stale.is_dir() and stale.name != target.name and not building:
                shutil.rmtree(stale, ignore_errors=True)
        os.replace(partial, target)
    say(f"VM image built in {time.monotonic() - started:.0f} s: {target}")
    return target


def run(files: Mapping[str, bytes | str], timeout: float = BOOT_AND_RUN_TIMEOUT) -> str:
    """Boot the VM with FILES on its probe disk, run their run.sh; return its console output.

    Only the lines between the start and end markers are returned, ending with `rc=N`.
    """
    if qemu_binary() is None:
        raise RuntimeError("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
    built = ensure_vm_image()
    with _probe_disk(files) as probe_disk:
        command = [
            qemu_binary(), "-accel", "tcg", "-m", str(MEMORY_MB), "-smp", str(VCPUS),
            "-nographic", "-nic", "none", "-no-reboot", "-monitor", "none",
            "-kernel", str(built / "vmlinuz"), "-initrd", str(built / "initrd.img"),
            # No getty on the console (its vhangup() would cut the probe's output off) and
            # no kernel messages in the middle of the probe's lines.
            # A guest kernel oops (seen: the CFS scheduler, dequeue_entity, under the CPUQuota
            # probe) panics and reboots at once, which -no-reboot turns into qemu exiting: the
            # run fails with the oops in its console tail instead of hanging to the deadline.
            "-append", "root=/dev/vda rw console=ttyS0 loglevel=1 systemd.show_status=0 "
                       "systemd.mask=serial-getty@ttyS0.service oops=panic panic=-1",
            "-drive", f"file={built / 'disk.img'},if=virtio,format=raw,snapshot=on",
            "-drive", f"file={probe_disk},if=virtio,format=raw,readonly=on",
        ]
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=timeout, check=False)
    console = result.stdout.decode("utf-8", "replace").replace("\r", "")
    oops = [console.find(marker) for marker in OOPS_MARKERS if marker in console]
    if oops:
        raise GuestKernelOops(f"the guest kernel oopsed (qemu rc {result.returncode}):\n"
                              f"{console[max(min(oops) - 200, 0):][:6000]}")
    start = console.find("LEFT4ME-VM-PROBE-START")
    end = console.find("LEFT4ME-VM-PROBE-END")
    if start < 0 or end < 0:
        raise RuntimeError(f"the VM probe did not run (qemu rc {result.returncode}); "
                           f"console tail:\n{console[-3000:]}")
    body = console[start + len("LEFT4ME-VM-PROBE-START\n"):end]
    status = console[end:].split("\n", 1)[0].split()[-1]
    return body + status + "\n"


@contextlib.contextmanager
def _probe_disk(files: Mapping[str, bytes | str]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="left4me-vm-probe-") as scratch:
        content = Path(scratch) / "content"
        for name, data in files.items():
            path = content / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode() if isinstance(data, str) else data)
        disk = Path(scratch) / "probe.img"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(content), str(disk), "64M"],
                       check=True)
        yield disk


def _install_kernel(rootfs: Path) -> None:
    with image.online_chroot(rootfs) as chroot:
        chroot("apt-get", "install", "-y", "-qq", "--no-install-recommends",
               *VM_PACKAGES)
        chroot("apt-get", "clean")


def _customise(rootfs: Path) -> None:
    (rootfs / "etc/fstab").write_text("LABEL=root / ext4 rw,errors=remount-ro 0 1\n")
    (rootfs / "etc/hostname").write_text("left4me-vm\n")
    unit = rootfs / "etc/systemd/system/left4me-vm-probe.service"
    unit.write_text(PROBE_UNIT)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).unlink(missing_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    # Nothing to log in to, nothing to wait for: boot straight to the probe.
    for masked in ("ssh.service", "systemd-networkd-wait-online.service", "apt-daily.timer",
                   "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
                   "man-db.timer", "dpkg-db-backup.timer"):
        link = rootfs / "etc/systemd/system" / masked
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def _newest(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if not found:
        raise RuntimeError(f"no {pattern} in {directory}: the kernel did not install")
    return found[-1]
