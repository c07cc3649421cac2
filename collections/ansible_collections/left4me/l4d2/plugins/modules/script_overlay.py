#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: script_overlay
short_description: Build a left4me overlay by running a user script in a hardened sandbox
version_added: 0.1.0
description:
  - Runs a user script that populates the overlay C({state_dir}/overlays/{name}/), for
    example a map sync or a config pack, as a transient systemd service
    (C(systemd-run --pipe --wait --collect --quiet)) in C(l4d2-build.slice), as the
    unprivileged runtime user.
  - The script writes to C(/overlay). That is a staging directory beside the overlay, on
    the same file system; only when the script exits 0 is the staged tree made
    world-readable (files o+r, directories o+rx), compared with the current overlay by a
    content hash and, when it differs, swapped in with one atomic
    C(renameat2(RENAME_EXCHANGE)). A failed, timed-out or killed build leaves the
    previous overlay untouched and its staging directory is removed.
  - "The sandbox: only C(/overlay) is writable (C(ProtectSystem=strict), C(ProtectHome),
    C(PrivateTmp), C(PrivateDevices)); C(/var/lib), C(/run), O(state_dir) and
    O(masked_paths) are replaced by empty tmpfs (C(TemporaryFileSystem=)), so the script
    cannot read the state database, instance settings or other overlays; no
    capabilities, C(NoNewPrivileges), C(PrivateUsers), C(RestrictSUIDSGID),
    C(RestrictNamespaces), C(LockPersonality), C(MemoryDenyWriteExecute), a system call
    allow list (C(@system-service) minus C(@privileged) and C(@resources)), kernel,
    clock, hostname, cgroup and /proc protections."
  - "Network: IPv4, IPv6 and Unix sockets only. C(IPAddressDeny=any) with an
    C(IPAddressAllow=) list computed as the exact complement of loopback, link-local
    (cloud metadata), multicast, reserved, RFC1918, CGNAT and ULA ranges (IPv6: only
    C(2000::/3)), so the script reaches the public internet and nothing on the host or
    behind it, and a forgotten range stays closed. Never C(IPAddressAllow=any): an allow
    entry wins over a deny entry (on systemd 257 it voided the deny list). A resolv.conf
    naming O(resolvers) is bound over C(/etc/resolv.conf), because the host's resolver
    usually sits on a blocked address."
  - Limits C(MemoryMax=), C(TasksMax=), C(CPUQuota=) and a wall-time kill
    C(RuntimeMaxSec=) come from O(memory_max), O(tasks_max), O(cpu_quota) and
    O(runtime_max_sec).
  - The script runs by its C(#!) line, or with C(/bin/sh) when it has none; its standard
    input is empty and the tail of its standard output and error is returned (the last
    O(output_lines) lines, at most 64 lines and 8 KiB). O(environment) reaches it through
    a root-only C(EnvironmentFile=), never a command line, and is hidden from logs.
  - While the script runs, its output is also written, whole lines as they come, to the
    live log C({state_dir}/overlays/.{name}.log) (root-only, emptied when a build starts,
    at most 1 MiB), so a playbook running this module with C(async) can show the build's
    progress before its result; C(playbooks/tasks/overlay-script.yml) does.
  - Builds of one overlay are serialised by a lock; build directories left by an
    interrupted run are removed by the next build.
  - When a mounted instance uses the overlay as a lower layer, that mount keeps reading
    the previous tree until it is remounted; the previous tree is then kept as
    C(.{name}.retired-*) and removed by the first build after no mount uses it.
  - See C(docs/sandbox.md) for the reason behind every directive.
author:
  - left4me developers (@left4me)
options:
  name:
    description:
      - Overlay id, 1 to 64 characters from C(a-z), C(0-9), C(_) and C(-), starting with
        a letter or digit. The overlay is C({state_dir}/overlays/{name}/).
    type: str
    required: true
  script:
    description:
      - Absolute path of the build script on the managed host. Mutually exclusive with
        O(content).
      - It is read with the rights of O(user) (a child process with that uid and its groups),
        never root's, so a file the runtime user may not read (say C(/etc/shadow)) is
        refused and nothing of it is shown. A regular file of at most 1 MiB.
    type: path
  content:
    description:
      - The build script itself. Mutually exclusive with O(script).
    type: str
  environment:
    description:
      - Environment variables for the script (for example a download token). Names are
        shell variable names; values are strings.
      - Handed over in a root-only file read by systemd; never logged or put on a
        command line.
    type: dict
  incremental:
    description:
      - Start the staging directory as a copy of the current overlay, so a sync script
        only fetches what changed and reconciles the rest.
      - With V(false) every build starts from an empty directory.
    type: bool
    default: true
  masked_paths:
    description:
      - Further directories replaced by an empty tmpfs inside the sandbox, in addition
        to C(/var/lib), C(/run) and O(state_dir).
    type: list
    elements: path
    default: [/etc/left4me]
  user:
    description: Runtime user the script runs as; it owns the overlay.
    type: str
    default: left4me
  group:
    description: Group of the script and the overlay; defaults to the primary group of O(user).
    type: str
  resolvers:
    description:
      - Public DNS resolvers written to the sandbox's C(/etc/resolv.conf). Addresses the
        sandbox may not reach are refused.
    type: list
    elements: str
    default: [1.1.1.1, 9.9.9.9, 2606:4700:4700::1111, 2620:fe::fe]
  memory_max:
    description: C(MemoryMax=) of the build, bytes with an optional K, M, G or T suffix.
    type: str
    default: 2G
  tasks_max:
    description: C(TasksMax=) of the build (processes and threads).
    type: int
    default: 256
  cpu_quota:
    description: C(CPUQuota=) of the build, a percentage of one CPU.
    type: str
    default: 100%
  max_size:
    description:
      - The most the built tree may hold, a size with an optional V(K), V(M), V(G) or V(T)
        suffix (powers of 1024). The staged tree is counted (allocated blocks, without
        following links) every 10 seconds while the script runs, and once more before it
        replaces the overlay; past the cap the build is killed and fails with both sizes
        in the message, and the previous tree stays what servers use.
    type: str
    default: 2G
  runtime_max_sec:
    description: Wall-time limit in seconds (C(RuntimeMaxSec=)); the build is killed after it.
    type: int
    default: 3600
  output_lines:
    description:
      - How many of the last lines of the script's output to return, 0 to 64. Results and
        failure messages never carry more than the last 64 lines and 8 KiB of it (the rest
        is dropped while the build runs).
    type: int
    default: 50
  slice:
    description: Slice the build runs in.
    type: str
    default: l4d2-build.slice
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
attributes:
  check_mode:
    description: Runs nothing; validates the arguments and reads the script.
    support: partial
    details:
      - Reports a change only when the overlay does not exist yet. For an existing overlay
        the result of the script cannot be known without running it, so check mode reports
        no change (RV(built) false) although a real run may change the overlay.
  diff_mode:
    description: Lists the overlay's entries (type, mode, short content hash) before and after.
    support: full
notes:
  - Called C(left4me.l4d2.script_build) in version 0.1.0; that name still works, deprecated,
    until version 1.0.0.
  - Needs root and systemd (v257 or later for every property) on the target, with
    C(systemd-run) and a kernel that supports C(renameat2(RENAME_EXCHANGE)) on the
    state file system (ext4, xfs and btrfs do).
  - "Resource limits only bite where cgroup controllers are delegated to the host's
    systemd: not in an unprivileged container."
seealso:
  - name: systemd.exec(5)
    description: The sandboxing directives used here.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html
  - name: systemd.resource-control(5)
    description: IPAddressDeny=, MemoryMax=, TasksMax=, CPUQuota=.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.resource-control.html
"""

EXAMPLES = r"""
- name: Build the tickrate overlay from a script shipped with the collection
  left4me.l4d2.script_overlay:
    name: tickrate
    content: "{{ lookup('ansible.builtin.file', 'scripts/tickrate-pack.sh') }}"
    environment:
      TICKRATE: "100"

- name: Sync the l4d2center maps with a token and a tighter memory limit
  left4me.l4d2.script_overlay:
    name: l4d2center-maps
    script: /usr/local/share/left4me/scripts/l4d2center-maps.sh
    environment:
      L4D2CENTER_TOKEN: "{{ vault_l4d2center_token }}"
    memory_max: 1G
    runtime_max_sec: 7200

- name: Rebuild a config pack from scratch
  left4me.l4d2.script_overlay:
    name: competitive
    content: |
      #!/bin/sh
      set -eu
      mkdir -p /overlay/left4dead2/cfg
      curl -fsS https://example.org/competitive/server.cfg -o /overlay/left4dead2/cfg/server.cfg
    incremental: false
"""

RETURN = r"""
path:
  description: The overlay directory.
  returned: always
  type: str
  sample: /var/lib/left4me/overlays/tickrate
built:
  description: Whether the script ran (false in check mode).
  returned: always
  type: bool
  sample: true
rc:
  description: Exit status of the build (systemd-run's); absent when nothing ran.
  returned: when the script ran
  type: int
  sample: 0
service_result:
  description:
    - systemd's result for the build unit, such as C(success), C(exit-code), C(timeout),
      C(oom-kill) or C(signal).
  returned: when the script ran
  type: str
  sample: success
output:
  description:
    - The last O(output_lines) lines of the script's standard output and error, together at
      most 8 KiB (a line cut short starts with C(...)).
  returned: when the script ran
  type: list
  elements: str
  sample: ["fetched 3 maps", "done"]
digest:
  description: SHA-256 over the overlay's entries (paths, types, modes, contents, link targets).
  returned: always
  type: str
  sample: 6f1c0c8b2a1e0b4c6b5e2b2d7c1f9b1a4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b
entries:
  description: Number of files, directories and links in the overlay.
  returned: always
  type: int
  sample: 42
live_log:
  description:
    - The live log of the build, on the managed host; it keeps the output (at most 1 MiB)
      until the next build of the overlay starts.
  returned: when the script ran
  type: str
  sample: /var/lib/left4me/overlays/.tickrate.log
retired:
  description: Where the previous tree was kept because a mounted instance still used it.
  returned: when the previous tree is still in use
  type: str
  sample: /var/lib/left4me/overlays/.maps.retired-3f2a9c0d1e2b4a5c
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import secrets  # noqa: E402
import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_CONFIG_DIR,
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
    group_id,
    parse_size,
    tree_usage,
    user_account,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    validate_overlay_id,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._sandbox import (  # noqa: E402
    Limits,
    LiveLog,
    SandboxError,
    build_paths,
    build_unit_name,
    environment_file_text,
    make_world_readable,
    manifest_digest,
    manifest_text,
    mounts_using,
    open_live_log,
    output_tail,
    overlay_lock,
    own_addresses,
    read_script_as,
    remove_tree,
    resolv_conf_text,
    result_marker,
    retired_dirs,
    run_keeping_tail,
    sandbox_properties,
    split_result,
    stale_build_dirs,
    swap_into_place,
    systemd_run_argv,
    tree_manifest,
    validate_environment,
    validate_output_lines,
    validate_resolvers,
    validate_user,
    write_all,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._script_overlay import (  # noqa: E402
    DEFAULT_MAX_SIZE,
    build_failure,
    build_failure_message,
    built_result,
    check_mode_result,
    leftovers_to_remove,
    manifest_diff,
    overlay_changed,
    oversize_failure,
    previous_tree_fate,
    retired_path,
)

# How long after RuntimeMaxSec= we stop waiting for systemd-run itself.
WAIT_GRACE_SEC = 120
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    script=dict(type="path"),
    content=dict(type="str"),
    environment=dict(type="dict", no_log=True),
    incremental=dict(type="bool", default=True),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
    masked_paths=dict(type="list", elements="path", default=[DEFAULT_CONFIG_DIR]),
    user=dict(type="str", default=DEFAULT_RUNTIME_USER),
    group=dict(type="str"),
    resolvers=dict(type="list", elements="str",
                   default=["1.1.1.1", "9.9.9.9", "2606:4700:4700::1111", "2620:fe::fe"]),
    memory_max=dict(type="str", default="2G"),
    tasks_max=dict(type="int", default=256),
    cpu_quota=dict(type="str", default="100%"),
    max_size=dict(type="str", default=DEFAULT_MAX_SIZE),
    runtime_max_sec=dict(type="int", default=3600),
    output_lines=dict(type="int", default=50),
    slice=dict(type="str", default="l4d2-build.slice"),
)


class Build:
    """One build's validated inputs: what :func:`build` needs besides the module."""

    def __init__(self, params) -> None:
        validate_overlay_id(params["name"], SandboxError)
        if not params["slice"].endswith(".slice") or "/" in params["slice"]:
            raise SandboxError(f"slice {params['slice']!r} must be a unit name ending in .slice")
        self.limits = Limits(params["memory_max"], params["tasks_max"], params["cpu_quota"],
                             params["runtime_max_sec"])
        self.max_size = parse_size(params["max_size"], "max_size", SandboxError)
        self.environment = validate_environment(params["environment"])
        self.resolvers = validate_resolvers(params["resolvers"])
        validate_output_lines(params["output_lines"])
        self.uid, self.gid, group = resolve_identity(params["user"], params["group"])
        self.script_text = read_script(params, self.uid, self.gid)
        self.paths = build_paths(params["name"], params["state_dir"], secrets.token_hex(8))
        if not os.path.isdir(self.paths.overlays):
            raise SandboxError(
                f"{self.paths.overlays} does not exist; converge the game host first")
        self.properties = sandbox_properties(
            self.paths, params["user"], group, self.limits, masked_paths=params["masked_paths"],
            state_dir=params["state_dir"], slice_name=params["slice"],
            with_environment=bool(self.environment), host_addresses=host_addresses())


def host_addresses() -> list[str]:
    """This host's own addresses, which the sandbox must not reach (they come in over lo)."""
    try:
        rc, out, err = run_command(["ip", "-j", "address", "show"])
    except FileNotFoundError:
        raise SandboxError("`ip` (Debian package iproute2) is needed to list this host's"
                           " addresses for the sandbox's deny list; install it") from None
    if rc != 0:
        raise SandboxError(f"`ip -j address show` failed (rc {rc}): {err.strip()}")
    return own_addresses(out)


def read_script(params, uid: int, gid: int) -> str:
    if params["content"] is not None:
        text = params["content"]
    else:
        groups = os.getgrouplist(params["user"], pwd.getpwnam(params["user"]).pw_gid)
        text = read_script_as(params["script"], uid, gid, groups)
    if not text.strip():
        raise SandboxError("the build script is empty")
    return text


def resolve_identity(user: str, group: str | None) -> tuple[int, int, str]:
    validate_user(user)
    entry = user_account(user, SandboxError, "runtime user {name!r} does not exist; create it"
                         " first (role left4me.l4d2.game_host)")
    if group is None:
        return entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name
    validate_user(group, "group")
    return entry.pw_uid, group_id(group, SandboxError), group


def create_file(path: str, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Create a new file in the build directory (never follows or reuses one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def run_command(argv: list[str]) -> tuple[int, str, str]:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace", env={**os.environ, "LANG": "C", "LC_ALL": "C"},
                            check=False)
    return result.returncode, result.stdout, result.stderr


def prepare(paths, script_text: str, environment: dict[str, str], resolvers: list[str],
            uid: int, gid: int, incremental: bool) -> None:
    """The build directory: the staging tree (a copy of the overlay, or empty) and the
    files the sandbox binds."""
    os.mkdir(paths.build_dir, 0o700)
    os.chmod(paths.build_dir, 0o700)
    if incremental and os.path.isdir(paths.overlay):
        rc, _out, err = run_command(["cp", "-a", "--reflink=auto", "--",
                                     paths.overlay, paths.staging])
        if rc != 0:
            raise SandboxError(f"copying {paths.overlay} into the staging directory failed: "
                               f"{err.strip()}")
    else:
        os.mkdir(paths.staging)
    os.chown(paths.staging, uid, gid)
    os.chmod(paths.staging, 0o755)
    create_file(paths.script, script_text, 0o500, uid, gid)
    create_file(paths.resolv_conf, resolv_conf_text(resolvers), 0o644)
    if environment:
        create_file(paths.environment, environment_file_text(environment), 0o600)


def size_watch(paths, unit: str, max_size: int, over: dict):
    """Every tick while the build runs: a staged tree past ``max_size`` ends the build
    (killed by systemd; counted with lstat only, never through the build's links)."""

    def watch() -> None:
        if over:
            return
        used = tree_usage(paths.staging, stop_above=max_size)
        if used > max_size:
            over["used"] = used
            run_command(["systemctl", "kill", "--signal=SIGKILL", unit])

    return watch


def run_build(module, paths, properties, limits: Limits, max_size: int) -> dict:
    unit = build_unit_name(os.path.basename(paths.overlay))
    fd = open_live_log(paths.live_log)
    over: dict = {}
    try:
        live = LiveLog(lambda data: write_all(fd, data),
                       hidden_prefix=result_marker(paths.token).encode())
        ran = run_keeping_tail(systemd_run_argv(properties, unit),
                               limits.runtime_max_sec + WAIT_GRACE_SEC, on_output=live.feed,
                               on_tick=size_watch(paths, unit, max_size, over))
        live.close()
    finally:
        os.close(fd)
    if ran is None:
        raise SandboxError(f"systemd-run did not return {WAIT_GRACE_SEC}s after "
                           f"RuntimeMaxSec={limits.runtime_max_sec}; check "
                           f"'systemctl status {unit}'")
    returncode, tail = ran
    output, service_result = split_result(tail.decode("utf-8", "replace"), paths.token)
    if not service_result:
        # The unit never reported back: show what systemd logged about it.
        _rc, journal, _err = run_command(["journalctl", "--no-pager", "--output=cat",
                                          "--lines=20", f"--unit={unit}"])
        output += "".join(f"journal: {line}\n" for line in journal.splitlines())
    return dict(rc=returncode, service_result=service_result, live_log=paths.live_log,
                output=output_tail(output, module.params["output_lines"]),
                oversize=over.get("used", 0))


def swap_in(module, paths, overlay_id: str, result: dict) -> None:
    """Make the staged tree the overlay; keep the previous one while a mount reads it."""
    previous = os.path.join(paths.build_dir, "previous")
    swap_into_place(paths.staging, paths.overlay, previous)
    exists = os.path.lexists(previous)
    fate = previous_tree_fate(exists, exists and _overlay_in_use(paths.overlay))
    if fate == "retire":
        kept = retired_path(paths.overlays, overlay_id, secrets.token_hex(8))
        os.rename(previous, kept)
        result["retired"] = kept
        module.warn(f"a mounted instance still uses the previous tree of overlay "
                    f"{overlay_id}; it sees the new one after a restart")
    # "remove": it goes with the build directory.


def build(module, job: Build) -> dict:
    """Run one build with the overlay lock held; returns the exit_json fields."""
    params, paths = module.params, job.paths
    overlay_id = params["name"]
    with overlay_lock(paths.lock):
        retired = retired_dirs(paths.overlays, overlay_id)
        in_use = _overlay_in_use(paths.overlay)
        for leftover in leftovers_to_remove(
                stale_build_dirs(paths.overlays, overlay_id), retired, in_use):
            remove_tree(leftover)
        before_manifest = tree_manifest(paths.overlay)
        try:
            prepare(paths, job.script_text, job.environment, job.resolvers, job.uid, job.gid,
                    params["incremental"])
            ran = run_build(module, paths, job.properties, job.limits, job.max_size)
            # Killed while it ran for growing past max_size: say that, not "a signal".
            oversize = ran.pop("oversize", 0)
            why = oversize_failure(oversize, job.max_size) if oversize else build_failure(
                ran["rc"], ran["service_result"], job.limits.runtime_max_sec)
            # Counted again once the sandbox has ended: nothing of the build changes it now.
            why = why or oversize_failure(tree_usage(paths.staging, stop_above=job.max_size),
                                          job.max_size)
            if why:
                module.fail_json(msg=build_failure_message(overlay_id, paths.overlay, why),
                                 path=paths.overlay, built=True, changed=False, **ran)
            make_world_readable(paths.staging)
            after_manifest = tree_manifest(paths.staging)
            digest = manifest_digest(after_manifest)
            changed = overlay_changed(os.path.isdir(paths.overlay),
                                      manifest_digest(before_manifest), digest)
            result = built_result(ran, paths.overlay, digest, len(after_manifest), changed)
            if changed:
                swap_in(module, paths, overlay_id, result)
            if module._diff:
                result["diff"] = manifest_diff(paths.overlay, manifest_text(before_manifest),
                                               manifest_text(after_manifest))
            return result
        finally:
            remove_tree(paths.build_dir)


def _overlay_in_use(overlay: str) -> bool:
    with open("/proc/1/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return bool(mounts_using(overlay, fh.read()))


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("script", "content")],
        required_one_of=[("script", "content")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        job = Build(params)
    except (SandboxError, OSError) as exc:
        module.fail_json(msg=str(exc))
    paths = job.paths
    if module.check_mode:
        manifest = tree_manifest(paths.overlay)
        module.exit_json(**check_mode_result(paths.overlay, os.path.isdir(paths.overlay),
                                             manifest_digest(manifest), len(manifest)))
    try:
        result = build(module, job)
    except (SandboxError, OSError) as exc:
        module.fail_json(msg=f"build of overlay {params['name']} failed: {exc}; the previous "
                             f"content of {paths.overlay} is untouched", path=paths.overlay)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
