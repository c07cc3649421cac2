"""The Debian root filesystem every test host boots, and the apt repository it installs from.

The image is what a fresh Debian 13 server has that Ansible needs to log in (minbase plus
systemd, SSH, sudo and python3), nothing a role installs: a role that forgets a package
then fails on a test host as it would on a fresh production host.

Test hosts have no route out, so the packages the roles may install come from a local
apt repository: every .deb in REPO_PACKAGES plus exactly the dependencies the bare image
lacks, downloaded once on this machine and cached beside the image. Each host sees it
read-only at REPO_MOUNT, its only apt source; the roles' own apt tasks install from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from testhosts import paths
from testhosts.log import say

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"

# What a fresh Debian server has that the harness needs, and no more:
# systemd + systemd-sysv boot the host as PID 1, dbus lets systemctl/loginctl talk to it,
# openssh-server + sudo let Ansible log in and become root as in production, and python3
# runs Ansible's modules. Everything else comes from debootstrap's minbase (Essential).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "sudo", "openssh-server")

# Every package a role or a molecule scenario's prepare may install with apt: the local
# repository holds these and their dependencies (recommends included, as apt installs them
# by default). A role's apt task naming a package missing here fails a fast test
# (tests/harness/test_apt_repo.py) rather than a converge.
REPO_PACKAGES = (
    # role game_host, game_host_packages
    "7zip", "ca-certificates", "coreutils", "curl", "iproute2", "libbpf1", "procps", "python3",
    "sudo",
    # role game_host: mkfs.ext4 and resize2fs for each server's size-capped write filesystem
    "e2fsprogs",
    # role game_host, game_host_steamcmd_packages (the real steamcmd's 32-bit runtime)
    "lib32gcc-s1", "lib32stdc++6",
    # role game_instances: the runtime user's network rules
    "nftables",
    # Ansible's apt module installs its Python bindings on first use
    "python3-apt",
    # role ui_service: the UI's virtualenv, and the ssh client its Ansible runs log in with
    "python3-venv", "openssh-client",
)

# Bump when the customisation below changes, so cached images are rebuilt.
IMAGE_REVISION = "2"
REPO_REVISION = "2"

ADMIN_USER = "ansible"
REPO_MOUNT = "/srv/left4me-apt"  # where a test host sees the repository
REPO_SOURCE = "/etc/apt/sources.list.d/left4me-testhosts.sources"
# Names of our own cache entries; never `debian-*`, which older harness code cleans up.
IMAGE_PREFIX = f"bare-{SUITE}-"
REPO_PREFIX = f"bare-{SUITE}-repo-"
STALE_REPO_AGE = 24 * 3600  # a stale repository may still be bound into a running host


def image_key() -> str:
    recipe = "\n".join([SUITE, IMAGE_REVISION, *BASE_PACKAGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def repo_key() -> str:
    recipe = "\n".join([image_key(), REPO_REVISION, *sorted(REPO_PACKAGES)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_path() -> Path:
    return paths.cache_dir() / f"{IMAGE_PREFIX}{image_key()}.tar.zst"


def repo_path() -> Path:
    return paths.cache_dir() / f"{REPO_PREFIX}{repo_key()}"


def ensure_image(rebuild: bool = False) -> Path:
    """Return the cached image tarball, building it first when missing."""
    tarball = image_path()
    if tarball.exists() and not rebuild:
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"building the bare {SUITE} test-host image with debootstrap (about a minute)...")
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="build-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _debootstrap(rootfs)
        _customise(rootfs)
        partial = Path(scratch) / "image.partial"
        subprocess.run(
            ["tar", "--zstd", "--numeric-owner", "--xattrs", "-cpf", str(partial),
             "-C", str(rootfs), "."],
            check=True,
        )
        os.replace(partial, tarball)
    for stale in tarball.parent.glob(f"{IMAGE_PREFIX}*.tar.zst"):
        if stale != tarball:
            stale.unlink()
    size_mb = tarball.stat().st_size / 2**20
    say(f"image built in {time.monotonic() - started:.0f} s: {tarball} ({size_mb:.0f} MB)")
    return tarball


def ensure_repo(rebuild: bool = False) -> Path:
    """Return the cached apt repository directory, downloading it first when missing."""
    target = repo_path()
    if (target / "Packages").exists() and not rebuild:
        return target
    tarball = ensure_image()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # hosts created in parallel build it once
        if (target / "Packages").exists() and not rebuild:
            return target
        return _build_repo(target, tarball)


def _build_repo(target: Path, tarball: Path) -> Path:
    started = time.monotonic()
    say(f"downloading the test hosts' apt repository ({len(REPO_PACKAGES)} packages "
        "and what the bare image lacks of their dependencies)...")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="repo-build-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        unpack(tarball, rootfs)
        built = Path(scratch) / "repo"
        built.mkdir(mode=0o755)
        with online_chroot(rootfs) as chroot:
            chroot("apt-get", "install", "--download-only", "-y", "-qq", *REPO_PACKAGES)
            for deb in sorted((rootfs / "var/cache/apt/archives").glob("*.deb")):
                # apt names a version's epoch "N%3a": keep file names free of URI escapes.
                copy = built / deb.name.replace("%3a", "_")
                shutil.copyfile(deb, copy)
                copy.chmod(0o644)
        write_index(built)
        if target.exists():
            shutil.rmtree(target)
        os.replace(built, target)
    now = time.time()
    for stale in target.parent.glob(f"{REPO_PREFIX}*"):
        if stale.name.startswith(target.name) or now - stale.stat().st_mtime < STALE_REPO_AGE:
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)  # a stale repository's build lock
    debs = list(target.glob("*.deb"))
    size_mb = sum(d.stat().st_size for d in debs) / 2**20
    say(f"apt repository built in {time.monotonic() - started:.0f} s: {target} "
        f"({len(debs)} packages, {size_mb:.0f} MB)")
    return target


def write_index(repo: Path) -> None:
    """Write a flat repository's Packages (plain and gzip) and Release for the .debs in REPO."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True,
                                 capture_output=True, text=True).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\n"  # noqa: S324 - apt's format
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = [f"Origin: left4me-testhosts\nLabel: left4me-testhosts\nSuite: {SUITE}\n"
             f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\nSHA256:"]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    for name in ("Packages", "Packages.gz", "Release"):
        (repo / name).chmod(0o644)


def unpack(tarball: Path, rootfs: Path) -> None:
    rootfs.mkdir(parents=True)
    subprocess.run(
        ["tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(rootfs)],
        check=True,
    )


@contextlib.contextmanager
def online_chroot(rootfs: Path) -> Iterator[Callable[..., None]]:
    """Run apt in ROOTFS with this machine's network and Debian's mirror as its source.

    Yields a function running a command in the chroot. On exit the rootfs gets back its
    test-host state: the local repository as only source, no package lists, no resolver.
    """
    resolv = rootfs / "etc/resolv.conf"
    source = rootfs / REPO_SOURCE.lstrip("/")
    mirror = rootfs / "etc/apt/sources.list.d/debian-mirror.sources"
    mounts = [(["-t", "proc", "proc"], rootfs / "proc"), (["-t", "sysfs", "sysfs"], rootfs / "sys"),
              (["--bind", "/dev"], rootfs / "dev")]
    mounted = []
    env = {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def chroot(*command: str) -> None:
        result = subprocess.run(["chroot", str(rootfs), *command], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} in {rootfs} failed:\n"
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")

    repo_source = source.read_text() if source.exists() else None
    try:
        resolv.unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", resolv)
        source.unlink(missing_ok=True)
        mirror.write_text(f"Types: deb\nURIs: {MIRROR}\nSuites: {SUITE}\nComponents: main\n"
                          "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        for options, point in mounts:
            subprocess.run(["mount", *options, str(point)], check=True)
            mounted.append(point)
        chroot("apt-get", "update", "-qq")
        yield chroot
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(point)], check=False)
        mirror.unlink(missing_ok=True)
        if repo_source is not None:
            source.write_text(repo_source)
        _forget_package_lists(rootfs)
        resolv.unlink(missing_ok=True)
        resolv.write_text("")  # test hosts resolve nothing


def _debootstrap(rootfs: Path) -> None:
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
               SUITE, str(rootfs), MIRROR]
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
    # The only apt source: the local repository, bound read-only from this machine. It is
    # unsigned (built here, never fetched over a network), hence trusted.
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    (rootfs / REPO_SOURCE.lstrip("/")).write_text(
        "# left4me test hosts: the packages the roles may install (testhosts/image.py).\n"
        f"Types: deb\nURIs: file:{REPO_MOUNT}\nSuites: ./\nTrusted: yes\n"
    )
    (rootfs / REPO_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
    subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
    _forget_package_lists(rootfs)
    # Start with empty package logs, so a test can tell what a converge installed.
    for log in ("var/log/dpkg.log", "var/log/apt/history.log", "var/log/apt/term.log"):
        if (rootfs / log).exists():
            (rootfs / log).write_text("")


def _forget_package_lists(rootfs: Path) -> None:
    # No package lists: the roles' apt tasks must update the cache, as on any fresh server
    # whose lists may be stale.
    lists = rootfs / "var/lib/apt/lists"
    for entry in lists.glob("*"):
        if entry.is_file():
            entry.unlink()
    (rootfs / "var/cache/apt/archives").mkdir(parents=True, exist_ok=True)
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
