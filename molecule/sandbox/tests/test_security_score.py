"""systemd-analyze security scores the builder unit at 1.0 or better (lower is safer).

Scored on a long-lived transient unit started with the very property list the module
uses (_sandbox.sandbox_properties), with `sleep` in place of a build script, so what is
scored is what runs. The score rates configuration; the probes prove enforcement.
"""

from __future__ import annotations

import re
import shlex

from ansible_collections.left4me.l4d2.plugins.module_utils import _sandbox as sandbox

MAX_EXPOSURE = 1.0
UNIT = "left4me-build-securityscore.service"


def test_builder_unit_exposure(ssh):
    paths = sandbox.build_paths("securityscore", token="score")
    props = sandbox.sandbox_properties(paths, "left4me", "left4me", sandbox.Limits())
    argv = ["systemd-run", "--quiet", "--collect", f"--unit={UNIT}"]
    argv += [f"--property={name}={value}" for name, value in props]
    argv += ["--", "/bin/sleep", "300"]
    setup = (f"install -d -m 0700 {paths.build_dir} && install -d -o left4me -g left4me "
             f"{paths.staging} && touch {paths.script} {paths.resolv_conf}")
    ssh.check_output(setup)
    try:
        ssh.check_output(shlex.join(argv))
        assert ssh.run(f"systemctl is-active {UNIT}").stdout.strip() == "active"
        report = ssh.check_output(f"systemd-analyze security --no-pager {UNIT}")
    finally:
        ssh.run(f"systemctl stop {UNIT}; rm -rf {paths.build_dir}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", report)
    assert found, report
    print(f"\nsystemd-analyze security {UNIT}: {found.group(1)} {found.group(2)}")
    assert float(found.group(1)) <= MAX_EXPOSURE, report
