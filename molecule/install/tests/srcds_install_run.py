"""srcds_install run on a converged host as the role runs it: ad hoc through `ansible` (become)."""

import json
import os
import pathlib
import subprocess
import tempfile


def run_srcds_install(host, module_args, *flags, module="left4me.l4d2.srcds_install"):
    """The module's result as a dict; "_shown" adds the warnings the controller printed."""
    name = host.backend.get_hostname()
    with tempfile.TemporaryDirectory() as tree:
        run = subprocess.run(
            ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "--become",
             "-m", module, "-a", json.dumps(module_args), "-t", tree,
             *flags],
            cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
            check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        )
        result = json.loads(pathlib.Path(tree, name).read_text())
    assert not result.get("failed"), run.stdout[-3000:] + run.stderr[-3000:]
    # Warnings: in the result, or shown by the controller as [WARNING] lines.
    result["_shown"] = json.dumps(result.get("warnings", [])) + run.stdout + run.stderr
    return result
