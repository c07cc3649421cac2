"""A build that ships a library requesting an executable stack still loads on trixie.

Debian 13's glibc 2.41 refuses to dlopen such a library. The stand-in ships one when its
`execstack` knob names it; srcds_install must clear the request (only there), record it,
change nothing on a re-run, and clear it again after `validate` restores Valve's bytes.
The module runs as Ansible runs it in the role, ad hoc against the converged host.
"""

import base64
import hashlib
import io
import json

import pytest
from elftools.elf.elffile import ELFFile
from srcds_install_run import run_srcds_install

STATE = "/var/lib/left4me"
INSTALL = f"{STATE}/installation"
CONTROL = f"{STATE}/steam/standin-control.json"
RECORD = f"{INSTALL}.execstack.json"
ENGINE = "bin/engine_srv.so"  # 32-bit, like the dedicated server's own libraries
PROBE = "bin/linux64/standin_probe.so"  # 64-bit: the host's python3 can dlopen it
DLOPEN = '"import ctypes, sys; ctypes.CDLL(sys.argv[1])"'  # an OSError exits 1 with its text


def run_module(host, *flags, **args):
    """srcds_install on the host through `ansible` (become), its result as a dict."""
    module_args = {"install_dir": INSTALL, "steamcmd_dir": f"{STATE}/steam",
                   "run_as": "left4me", **args}
    return run_srcds_install(host, module_args, *flags)


def stack_flags(host, relative):
    """PT_GNU_STACK p_flags of an installed library, read with pyelftools on the controller."""
    body = host.file(f"{INSTALL}/{relative}").content
    elf = ELFFile(io.BytesIO(body))
    return [seg["p_flags"] for seg in elf.iter_segments() if seg["p_type"] == "PT_GNU_STACK"][0]


def dlopen_as_runtime_user(host, relative):
    return host.run(f"sudo -u left4me python3 -c {DLOPEN} {INSTALL}/{relative}")


@pytest.fixture(scope="module")
def shipped_execstack_build(host):
    """Steer the stand-in to a new build shipping two libraries that request an exec stack."""
    control = host.file(CONTROL)
    before = control.content if control.exists else None
    build = int(host.check_output(
        f"sed -n 's/.*\"buildid\"[[:space:]]*\"\\([0-9]*\\)\".*/\\1/p'"
        f" {INSTALL}/steamapps/appmanifest_222860.acf"))
    knob = json.dumps({"buildid": build + 1, "execstack": f"{ENGINE},{PROBE}"}).encode()
    host.check_output(f"echo {base64.b64encode(knob).decode()} | base64 -d > {CONTROL}"
                      f" && chmod 0644 {CONTROL}")
    yield build + 1
    if before is None:
        host.check_output(f"rm -f {CONTROL}")
    else:
        host.check_output(f"echo {base64.b64encode(before).decode()} | base64 -d > {CONTROL}")


def test_shipped_library_is_refused_by_glibc_then_cleared_and_loads(host,
                                                                    shipped_execstack_build):
    glibc = host.check_output("getconf GNU_LIBC_VERSION").split()[-1]
    # The update, with clearing turned off: the libraries stay as shipped.
    shipped = run_module(host, clear_execstack=False)
    assert shipped["buildid"] == shipped_execstack_build and shipped["execstack_cleared"] == []
    assert stack_flags(host, ENGINE) == stack_flags(host, PROBE) == 7  # RWE
    refused = dlopen_as_runtime_user(host, PROBE)
    if tuple(int(part) for part in glibc.split(".")) >= (2, 41):
        assert refused.rc != 0
        assert "cannot enable executable stack as shared object requires" in refused.stderr
    # The role's way: cleared, recorded, and the library loads.
    fixed = run_module(host)
    assert fixed["changed"] is True
    assert fixed["execstack_cleared"] == [ENGINE, PROBE] == fixed["execstack_recorded"]
    assert stack_flags(host, ENGINE) == stack_flags(host, PROBE) == 6  # RW
    loaded = dlopen_as_runtime_user(host, PROBE)
    assert loaded.rc == 0, loaded.stderr
    engine = host.file(f"{INSTALL}/{ENGINE}")
    assert (engine.user, engine.group, engine.mode) == ("left4me", "left4me", 0o755)
    record = json.loads(host.file(RECORD).content_string)["files"]
    assert record == {name: {"sha256": host.file(f"{INSTALL}/{name}").sha256sum}
                      for name in (ENGINE, PROBE)}
    assert stack_flags(host, "bin/dedicated_srv.so") == 6, "untouched: it never asked"


def test_rerun_changes_nothing_and_validate_is_cleared_again(host, shipped_execstack_build):
    again = run_module(host)
    assert again["changed"] is False and again["execstack_cleared"] == []
    assert run_module(host, "--check")["changed"] is False
    record_before = host.file(RECORD).content
    repaired = run_module(host, validate=True)  # steamcmd puts Valve's bytes back...
    assert repaired["execstack_cleared"] == [ENGINE, PROBE]  # ...and they are cleared again
    assert stack_flags(host, ENGINE) == 6
    assert host.file(RECORD).content == record_before, "same bytes after clearing again"
    digest = hashlib.sha256(host.file(f"{INSTALL}/{PROBE}").content).hexdigest()
    assert json.loads(record_before)["files"][PROBE]["sha256"] == digest
