"""Ad-hoc module runs (console commands, log reads): what a person typed reaches the module
as text, and no template in it runs on the UI's machine."""

from __future__ import annotations

import sys

from domain_helpers import with_settings

from left4me_ui import runner
from left4me_ui.runner import load_inventory


def test_a_typed_template_reaches_the_module_as_text(core, tmp_path):
    inventory = tmp_path / "local.yml"
    inventory.write_text("l4d2_hosts:\n  hosts:\n    host-a:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n"
                         "      ansible_become_method: su\n")
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    out, witness = tmp_path / "written.txt", tmp_path / "pwned"
    typed = f"say {{{{ lookup('pipe', 'touch {witness}') }}}} {{{{ 6 * 7 }}}} {{% raw %}}"
    run = runner.run_module(core, "host-a", "ansible.builtin.copy",
                            {"content": typed, "dest": str(out), "mode": "0600"}, timeout=120)
    assert run.ok, run.message
    assert out.read_text() == typed
    assert not witness.exists(), "the typed lookup ran on the UI's machine"
