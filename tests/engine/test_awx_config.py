"""AWX configuration as code (awx/configure.yml) and the self-service playbook it points at."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from engine_support import PROJECT, Converged, pinned_requirements
from packaging.requirements import Requirement

CONFIGURE = PROJECT / "awx/configure.yml"
SERVER_PLAYBOOK = PROJECT / "playbooks/server.yml"
WHEELS = Path.home() / ".cache/left4me/wheels"  # kept between runs: the wheel is ~54 MB


class PlaybookLoader(yaml.SafeLoader):
    """Reads Ansible's !unsafe tag as the plain string it marks."""


PlaybookLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def configure_play() -> dict:
    return yaml.load(CONFIGURE.read_text(), Loader=PlaybookLoader)[0]


def ansible_pin() -> str:
    return f"ansible=={pinned_requirements()['ansible']}"


@pytest.fixture(scope="session")
def ansible_wheel() -> Path:
    version = ansible_pin().split("==")[1]
    wheel = WHEELS / f"ansible-{version}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--dest", str(WHEELS), ansible_pin()], check=True, timeout=900)
    return wheel


@pytest.fixture(scope="session")
def awx_collections(ansible_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections path holding only awx.awx, taken out of the ansible package."""
    root = tmp_path_factory.mktemp("awx-collection")
    with zipfile.ZipFile(ansible_wheel) as wheel:
        members = [name for name in wheel.namelist()
                   if name.startswith("ansible_collections/awx/awx/")]
        wheel.extractall(root, members)
    return root


def job_templates() -> dict[str, dict]:
    tasks = configure_play()["tasks"]
    return {task["awx.awx.job_template"]["name"]: task["awx.awx.job_template"]
            for task in tasks if "awx.awx.job_template" in task}


def test_the_awx_package_is_built_on_the_pinned_ansible_core(ansible_wheel: Path) -> None:
    with zipfile.ZipFile(ansible_wheel) as wheel:
        metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    core = next(Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
                if line.startswith("Requires-Dist: ansible-core"))
    assert pinned_requirements()["ansible-core"] in core.specifier


def test_the_ansible_package_is_pinned_once_and_kept_out_of_the_venv() -> None:
    lines = [line for line in (PROJECT / "requirements.txt").read_text().splitlines()
             if line.startswith("ansible==")]
    assert len(lines) == 1
    marker = Requirement(lines[0]).marker
    # pip evaluates a requirements file's markers with an empty extra: the venv skips it.
    assert marker is not None and not marker.evaluate({"extra": ""})
    # No second pin file beside the playbook that needs it.
    assert list((PROJECT / "awx").glob("*requirements*")) == []


def test_awx_files_pass_ansible_lint_offline(awx_collections: Path) -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": f"{awx_collections}:{PROJECT / 'collections'}"}
    result = subprocess.run(
        ["ansible-lint", "--offline", "--profile", "production", "--nocolor",
         "awx/configure.yml", "execution-environment.yml", "playbooks/server.yml"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in result.stderr


def test_templates_run_playbooks_of_this_project() -> None:
    templates = job_templates()
    assert {template["playbook"] for template in templates.values()} == {
        "playbooks/site.yml", "playbooks/server.yml", "playbooks/overlay.yml",
        "playbooks/workshop_overlay.yml"}
    for template in templates.values():
        assert (PROJECT / template["playbook"]).is_file()
    # The converge is sliced: AWX splits the inventory over that many jobs run side by side.
    play_vars = configure_play()["vars"]
    assert "left4me_awx_converge_slices" in templates["left4me converge"]["job_slice_count"]
    assert play_vars["left4me_awx_converge_slices"] > 1


def test_survey_asks_what_the_playbook_reads() -> None:
    spec = job_templates()["left4me server action"]["survey_spec"]["spec"]
    variables = {question["variable"]: question for question in spec}
    assert set(variables) == {"left4me_server_name", "left4me_server_state"}
    playbook_text = SERVER_PLAYBOOK.read_text()
    assert str(variables["left4me_server_state"]["choices"]) in playbook_text


def test_the_self_service_template_never_acts_on_a_ui_server() -> None:
    """Operator-only: fixed to the inventory's manager, which its launcher cannot change, so
    every host refuses it a UI user's server (srcds_instance's manager record)."""
    template = job_templates()["left4me server action"]
    assert template["extra_vars"] == {"left4me_server_manager": "inventory"}
    assert template.get("ask_variables_on_launch") is False
    survey = {q["variable"] for q in template["survey_spec"]["spec"]}
    assert not survey & {"left4me_server_manager", "left4me_server_claim",
                         "left4me_server_adopt"}


def test_the_ui_template_takes_what_the_ui_sends() -> None:
    """LEFT4ME_UI_JOB_BACKEND=awx launches it with a limit, variables and the RCON password
    (tests/ui/domain/test_jobs_awx.py runs the UI against a stand-in AWX holding it)."""
    template = job_templates()["left4me UI server"]
    assert template["playbook"] == "playbooks/server.yml"
    assert template["ask_limit_on_launch"] and template["ask_variables_on_launch"]
    questions = {q["variable"]: q for q in template["survey_spec"]["spec"]}
    # A password question: AWX stores the answer encrypted, never in clear.
    assert questions == {"left4me_server_rcon_password": questions["left4me_server_rcon_password"]}
    assert questions["left4me_server_rcon_password"]["type"] == "password"


def test_rcon_passwords_live_in_a_credential_not_the_inventory() -> None:
    tasks = configure_play()["tasks"]
    credential_type = next(task["awx.awx.credential_type"] for task in tasks
                           if "awx.awx.credential_type" in task)
    field = credential_type["inputs"]["fields"][0]
    assert field["secret"] is True
    assert "left4me_rcon_passwords" in credential_type["injectors"]["extra_vars"]
    assert all(task.get("no_log") for task in tasks if "awx.awx.credential" in task)
    inventory_text = "".join(path.read_text() for path in
                             (PROJECT / "inventories/fleet").rglob("*.yml"))
    assert "left4me_rcon_passwords[" in inventory_text
    assert "rcon_password: " not in inventory_text.replace('rcon_password: "{{', "")


@pytest.mark.testhost
def test_server_playbook_acts_on_a_server_by_name_with_plain_ansible_playbook(
        converged_from_artifact: Converged) -> None:
    inventory = converged_from_artifact.inventory
    host = converged_from_artifact.host

    def action(name: str, state: str, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(SERVER_PLAYBOOK),
             "-e", f"left4me_server_name={name}", "-e", f"left4me_server_state={state}", *more],
            cwd=PROJECT, capture_output=True, text=True, timeout=600)

    def main_pid() -> str:
        return host.nsenter("systemctl", "show", "--value", "--property=MainPID",
                            "left4me-server@coop1.service").strip()

    before = main_pid()
    refused = action("coop1", "explode")
    assert refused.returncode != 0 and "left4me_server_state" in refused.stdout
    assert main_pid() == before
    # coop1 is the inventory's (site.yml's): the playbook's default manager, the UI's, may
    # not touch it, and says whose it is.
    not_ours = action("coop1", "restarted")
    assert not_ours.returncode != 0 and "managed by inventory" in not_ours.stdout, \
        not_ours.stdout[-3000:]
    assert main_pid() == before
    restarted = action("coop1", "restarted", "-e", "left4me_server_manager=inventory")
    assert restarted.returncode == 0, restarted.stdout[-3000:]
    assert main_pid() not in (before, "0")
