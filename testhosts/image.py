"""The Debian root filesystem that every test host boots: built once, cached as a tarball."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from testhosts import paths
from testhosts.log import say

SUITE = "trixie"

# Everything the roles need is baked in: test hosts have no route out.
PACKAGES = (
    # systemd as PID 1 and what Ansible needs to talk to it
    "systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "sudo", "acl",
    "openssh-server", "iproute2", "procps", "util-linux", "ca-certificates", "less",
    # what the roles install on a game host (build scripts need 7z and md5sum)
    "7zip", "coreutils", "curl", "file",
)

# Bump when the customisation below changes, so cached images are rebuilt.
IMAGE_REVISION = "1"

ADMIN_USER = "ansible"


def image_key() -> str:
    recipe = "\n".join([SUITE, IMAGE_REVISION, *PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_path() -> Path:
    return paths.cache_dir() / f"debian-{SUITE}-{image_key()}.tar.zst"


def ensure_image(rebuild: bool = False) -> Path:
    """Return the cached image tarball, building it first when missing."""
    tarball = image_path()
    if tarball.exists() and not rebuild:
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"building the {SUITE} test-host image with debootstrap (about a minute)...")
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="build-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _debootstrap(rootfs)
        _customise(rootfs)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--zstd", "--numeric-owner", "--xattrs", "-cpf", str(partial),
             "-C", str(rootfs), "."],
            check=True,
        )
        os.replace(partial, tarball)
    for stale in tarball.parent.glob(f"debian-{SUITE}-*.tar.zst"):
        if stale != tarball:
            stale.unlink()
    size_mb = tarball.stat().st_size / 2**20
    say(f"image built in {time.monotonic() - started:.0f} s: {tarball} ({size_mb:.0f} MB)")
    return tarball


def unpack(tarball: Path, rootfs: Path) -> None:
    rootfs.mkdir(parents=True)
    subprocess.run(
        ["tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(rootfs)],
        check=True,
    )


def _debootstrap(rootfs: Path) -> None:
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
               SUITE, str(rootfs)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        tail = log.read_text()[-2000:] if log.exists() else result.stderr[-2000:]
        raise RuntimeError(f"debootstrap failed (rc={result.returncode}):\n{tail}")


def _customise(rootfs: Path) -> None:
    # Each boot must get a fresh machine-id: an empty file makes systemd generate one.
    (rootfs / "etc/machine-id").write_text("")
    Path(rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # Host keys are made per host at create time, never shared by copies of the image.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/ssh/sshd_config.d/left4me-testhost.conf").write_text(
        "# Key auth only, as on a production host.\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin no\nUseDNS no\n"
    )
    subprocess.run(["chroot", str(rootfs), "useradd", "--create-home", "--shell", "/bin/bash",
                    ADMIN_USER], check=True)
    sudoers = rootfs / f"etc/sudoers.d/{ADMIN_USER}"
    sudoers.write_text(f"{ADMIN_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)
    shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
    subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
