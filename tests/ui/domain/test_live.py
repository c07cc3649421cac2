"""Console and log: what a command may be, and who may run one or read a server's log."""

from __future__ import annotations

import pytest

from left4me_ui import blueprints, live, servers
from left4me_ui.authz import NotFound


@pytest.mark.parametrize(("command", "says"), [
    ("status\nquit", "line feed: send one command per call"),
    ("status\rquit", "carriage return"),
    ("say a\0b", "NUL"),
    ("   ", "type a command"),
    ("say " + "x" * 4000, "longer than 4000 bytes"),
    ("rcon_password hunter2", "rcon_password is refused"),
    ("RCON_PASSWORD", "rcon_password is refused"),
    # srcds runs every `;`-separated part and strips quotes from the command word
    ("status;rcon_password x", "rcon_password is refused"),
    ('"rcon_password" x', "rcon_password is refused"),
    ('alias x "rcon_password y"; x', "rcon_password is refused"),
    ("status; quit", "quit is refused: stop or restart the server through left4me"),
    ('"EXIT"', "exit is refused"),
    ("say bye;_restart", "_restart is refused"),
])
def test_a_bad_command_is_refused_with_a_reason(command, says):
    with pytest.raises(live.ConsoleError, match=says):
        live.check_command(command)


def test_a_good_command_is_kept_as_typed_without_outer_space():
    assert live.check_command("  changelevel c2m1_highway ") == "changelevel c2m1_highway"
    assert live.check_command('say "quit; exit"; status') == 'say "quit; exit"; status'
    assert live.check_command("sv_password letmein") == "sv_password letmein"


@pytest.fixture
def alice_server(core, alice) -> int:
    blueprint = blueprints.create(core, alice, "coop", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="Alice coop"))
    return servers.create(core, alice, "alice1", "alpha", blueprint.id)[0]


@pytest.mark.parametrize("read", [
    lambda core, actor, sid: live.run_console(core, actor, sid, "status"),
    lambda core, actor, sid: live.console_history(core, actor, sid),
    lambda core, actor, sid: live.read_log(core, actor, sid),
], ids=["console", "console history", "log"])
def test_another_user_gets_no_console_and_no_log(core, bob, alice_server, read):
    with pytest.raises(NotFound):
        read(core, bob, alice_server)
    with core.db.connect() as conn:  # nothing ran, so nothing was kept
        assert conn.execute("SELECT COUNT(*) FROM console_history").fetchone()[0] == 0


def test_a_refused_command_runs_nothing_and_is_not_kept(core, alice, alice_server):
    with pytest.raises(live.ConsoleError):
        live.run_console(core, alice, alice_server, "rcon_password x")
    assert live.console_history(core, alice, alice_server) == []
