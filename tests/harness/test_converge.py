"""testhosts.converge reports a run's PLAY RECAP counters for the one host it ran on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testhosts import converge

PLAYBOOK = """
- name: Every kind of result once
  hosts: all
  gather_facts: false
  tasks:
    - name: Changed
      ansible.builtin.command: "true"
    - name: Ok
      ansible.builtin.debug:
        msg: ok
    - name: Skipped
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Failed and ignored
      ansible.builtin.command: "false"
      ignore_errors: true
    - name: Rescued
      block:
        - name: Fails
          ansible.builtin.command: "false"
      rescue:
        - name: Rescues
          ansible.builtin.debug:
            msg: rescued
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with playbooks/site.yml and a two-host local inventory, as molecule sets."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "site.yml").write_text(PLAYBOOK)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("".join(
        f"{name} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        for name in ("target", "other")))
    monkeypatch.setenv("MOLECULE_PROJECT_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", str(inventory))
    return tmp_path


def test_run_site_returns_the_recap_counters_of_the_named_host(project: Path) -> None:
    assert converge.run_site("target") == {
        "ok": 4, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 1, "rescued": 1,
        "ignored": 1}


def test_check_mode_that_changes_something_fails(project: Path) -> None:
    # command does not run in check mode, so nothing changes: the check passes ...
    converge.assert_check_mode_changes_nothing("target")
    # ... and a task that reports a change in check mode makes it fail.
    (project / "playbooks" / "site.yml").write_text(PLAYBOOK.replace(
        '      ansible.builtin.command: "true"',
        '      ansible.builtin.command: "true"\n      check_mode: false'))
    with pytest.raises(AssertionError, match="'changed': 1"):
        converge.assert_check_mode_changes_nothing("target")
