"""The fast read path without a host: the ssh command built from the inventory as Ansible's
ssh plugin builds it, the entry point's answers and ssh's failures mapped, and when reads
fall back to Ansible runs. On a booted host: test_host_reads_on_host.py."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from left4me_ui import host_reads, settings
from left4me_ui.runner import ModuleRun

HOSTVARS = {"ansible_host": "192.0.2.10", "ansible_user": "ansible",
            "ansible_ssh_private_key_file": "/keys/id_ed25519",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/keys/known_hosts"
                                       " -o StrictHostKeyChecking=yes"}


def test_the_connection_is_the_one_ansible_uses_with_host_keys_checked(tmp_path):
    target = host_reads.ssh_target("alpha", HOSTVARS)
    argv = host_reads.ssh_argv(target, tmp_path)
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]  # a host key is checked, never asked
    for option in ('IdentityFile="/keys/id_ed25519"', 'User="ansible"',
                   "UserKnownHostsFile=/keys/known_hosts", "StrictHostKeyChecking=yes",
                   "ControlMaster=auto", "ControlPersist=60s"):
        assert argv[argv.index(option) - 1] == "-o", option
    assert argv[-7:] == ["--", "192.0.2.10", *host_reads.ENTRY_POINT]
    # ansible's ssh plugin: sha1("host-port-user")[:10] in the control dir, shared with it.
    digest = hashlib.sha1(b"192.0.2.10-None-ansible").hexdigest()[:10]
    assert f'ControlPath="{tmp_path / digest}"' in argv
    assert "Port=2222" in host_reads.ssh_argv(
        host_reads.ssh_target("alpha", {**HOSTVARS, "ansible_port": 2222}), tmp_path)


def test_a_templated_connection_is_left_to_ansible():
    with pytest.raises(host_reads.Unavailable, match="templated"):
        host_reads.ssh_target("alpha", {**HOSTVARS, "ansible_host": "{{ lookup('env', 'X') }}"})


def test_ansible_cfg_ssh_args_are_used_when_set(tmp_path):
    assert host_reads.ansible_ssh_args(tmp_path / "none.cfg") == host_reads.ANSIBLE_SSH_ARGS
    (tmp_path / "ansible.cfg").write_text("[ssh_connection]\nssh_args = -o ControlPersist=5m\n")
    assert host_reads.ansible_ssh_args(tmp_path / "ansible.cfg") == "-o ControlPersist=5m"


@pytest.mark.parametrize(("rc", "out", "err", "expected"), [
    (0, '{"output": "hostname: x"}', "", ModuleRun(True, "", {"output": "hostname: x"})),
    (1, '{"failed": true, "msg": "instance \'a\' is not running"}', "",
     ModuleRun(False, "instance 'a' is not running",
               {"failed": True, "msg": "instance 'a' is not running"})),
    (2, '{"failed": true, "msg": "left4me-read: unknown verb"}', "",
     ModuleRun(False, "left4me-read: unknown verb",
               {"failed": True, "msg": "left4me-read: unknown verb"})),
])
def test_the_entry_points_answers_are_module_runs(rc, out, err, expected):
    assert host_reads.parse_answer("alpha", rc, out, err) == expected


@pytest.mark.parametrize(("err", "says"), [
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
     "alpha's SSH host key is not the one known for it"),
    ("No ED25519 host key is known for 192.0.2.10.\nHost key verification failed.",
     "alpha's SSH host key is not the one known for it"),
    ("ssh: connect to host 192.0.2.10 port 22: Connection timed out",
     "alpha is unreachable over SSH: ssh: connect to host 192.0.2.10 port 22: Connection"),
])
def test_ssh_failures_are_said(err, says):
    with pytest.raises(host_reads.ReadFailed, match=says):
        host_reads.parse_answer("alpha", 255, "", err)


@pytest.mark.parametrize(("rc", "err"), [
    (2, "/usr/bin/python3: can't open file '/usr/local/libexec/left4me/left4me-read':"
        " [Errno 2] No such file or directory"),
    (1, "sudo: a password is required"),
    (127, "bash: sudo: command not found"),
])
def test_a_host_without_a_usable_entry_point_is_unavailable(rc, err):
    with pytest.raises(host_reads.Unavailable):
        host_reads.parse_answer("alpha", rc, "", err)


def test_the_setting_is_on_or_off(monkeypatch):
    assert settings._switch_env("LEFT4ME_UI_FAST_READS", True)
    monkeypatch.setenv("LEFT4ME_UI_FAST_READS", "off")
    assert not settings._switch_env("LEFT4ME_UI_FAST_READS", True)
    monkeypatch.setenv("LEFT4ME_UI_FAST_READS", "maybe")
    with pytest.raises(ValueError, match="on or off"):
        settings._switch_env("LEFT4ME_UI_FAST_READS", True)


@pytest.fixture
def fast_core(core, monkeypatch):
    core.settings = replace(core.settings, fast_reads=True)
    monkeypatch.setattr(host_reads, "_fallback_until", {})
    ran: list[tuple[str, str, dict]] = []

    def run_module(_core, host, module, args, timeout):
        ran.append((host, module, args))
        return ModuleRun(True, "", {"via": "ansible"})
    monkeypatch.setattr(host_reads, "run_module", run_module)
    return core, ran


def test_reads_take_the_fast_path_when_they_may(fast_core, monkeypatch):
    fast_core, ran = fast_core
    asked = []
    monkeypatch.setattr(host_reads, "ask", lambda target, _dir, verb, instance, args, deadline:
                        asked.append((target.host, verb, instance, args))
                        or ModuleRun(True, "", {"via": "fast"}))
    run = host_reads.read(fast_core, "alpha", "logs", "coop1", {"lines": 5}, 30)
    assert run.result == {"via": "fast"} and asked == [("alpha", "logs", "coop1", {"lines": 5})]
    assert ran == [] and host_reads.fast(fast_core, "alpha")


@pytest.mark.parametrize("change", [{"fast_reads": False}, {"job_backend": "awx"}])
def test_the_setting_off_or_the_awx_backend_reads_through_ansible(fast_core, change):
    fast_core, ran = fast_core
    fast_core.settings = replace(fast_core.settings, **change)
    assert not host_reads.fast(fast_core, "alpha")
    run = host_reads.read(fast_core, "alpha", "rcon", "coop1", {"command": "status"}, 30)
    assert run.result == {"via": "ansible"}
    assert ran == [("alpha", "left4me.l4d2.rcon",
                              {"name": "coop1", "command": "status"})]


def test_a_host_without_the_entry_point_falls_back_and_is_remembered(fast_core, monkeypatch):
    fast_core, ran = fast_core
    def missing(*_args):
        raise host_reads.Unavailable("alpha has no usable left4me-read")
    monkeypatch.setattr(host_reads, "ask", missing)
    run = host_reads.read(fast_core, "alpha", "info", None, {"players": True}, 120)
    assert run.result == {"via": "ansible"}
    assert ran == [("alpha", "left4me.l4d2.srcds_info", {"players": True})]
    assert not host_reads.fast(fast_core, "alpha") and host_reads.fast(fast_core, "beta")


def test_an_unreachable_host_is_a_failed_read_not_a_fallback(fast_core, monkeypatch):
    fast_core, ran = fast_core
    def unreachable(*_args):
        raise host_reads.ReadFailed("no answer from alpha within 30 s")
    monkeypatch.setattr(host_reads, "ask", unreachable)
    run = host_reads.read(fast_core, "alpha", "info", None, {}, 30)
    assert run == ModuleRun(False, "no answer from alpha within 30 s")
    assert ran == [] and host_reads.fast(fast_core, "alpha")
