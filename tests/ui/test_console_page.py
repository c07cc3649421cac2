"""The console and log page, driven with AppTest: who gets a console, what a refused
command looks like. Commands really run on a host in tests/ui/domain/test_server_on_host.py."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from left4me_ui import blueprints, host_reads, live, servers
from left4me_ui.log_follow import LogView
from left4me_ui.runner import ModuleRun
from tests.ui.conftest import Person

STATUS = "hostname: My coop\n# userid name uniqueid connected ping loss state rate adr\n#end\n"
LOG_LINES = ["2026-11-27T16:40:12Z srcds_run: Console: hello from the test"]


@pytest.fixture(autouse=True)
def host_reads_asked(core, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """What the page asked of the host through Ansible, the fast path turned off (the
    modules' real runs and the fast path: test_server_on_host.py, test_host_reads_on_host.py)."""
    core.settings = replace(core.settings, fast_reads=False)
    asked: list[tuple[str, dict]] = []

    def answer(_core, _host, module, args, timeout):
        asked.append((module, args))
        if module == "left4me.l4d2.rcon":
            return ModuleRun(True, "", {"output": STATUS, "seconds": 0.03})
        return ModuleRun(True, "", {"lines": LOG_LINES, "cursor": "s=1"})
    monkeypatch.setattr(host_reads, "run_module", answer)
    return asked


def shown(app) -> str:
    """Errors as a person reads them (the frame escapes markdown)."""
    return "\n".join(e.value for e in app.error).replace("\\", "")


def deployed_server(core, person: Person) -> int:
    blueprint = blueprints.create(core, person.actor, "coop", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="My coop"))
    server_id, _job = servers.create(core, person.actor, "mine1", "alpha", blueprint.id)
    with core.db.connect() as conn:  # as if its create job had run
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
    return server_id


def test_without_a_running_server_there_is_no_console(core, alice):
    app = alice.app("console")
    assert not app.exception
    assert "no running servers" in "\n".join(t.value for t in app.text)
    assert not app.text_input


def test_another_users_server_is_not_offered(core, alice, bob):
    deployed_server(core, alice)
    app = bob.app("console")
    assert "no running servers" in "\n".join(t.value for t in app.text)


def test_the_log_is_shown_as_plain_text_and_followed_from_its_cursor(core, alice,
                                                                     host_reads_asked):
    server_id = deployed_server(core, alice)
    app = alice.app("console")
    assert LOG_LINES[0] in [c.value for c in app.code]
    app.run()  # the next refresh asks only for what came after the cursor
    assert host_reads_asked[-1] == ("left4me.l4d2.server_logs",
                              {"name": "mine1", "lines": 200, "cursor": "s=1"})
    assert server_id


def test_on_the_fast_path_the_log_is_drawn_from_the_followed_buffer_without_a_read(
        core, alice, host_reads_asked, monkeypatch):
    """The follower itself (its stream and buffer): tests/ui/domain/test_log_follow.py."""
    server_id = deployed_server(core, alice)
    core.settings = replace(core.settings, fast_reads=True)
    looked = []

    def follow_log(_core, actor, sid):
        looked.append((actor.name, sid))
        return LogView(tuple(LOG_LINES), "s=9", len(looked), None, True)
    monkeypatch.setattr(live, "follow_log", follow_log)
    app = alice.app("console")
    assert not app.exception
    assert LOG_LINES[0] in [c.value for c in app.code]
    assert "new lines show within a second" in app.toggle[0].label
    app.run()
    assert looked[-1] == ("alice", server_id) and len(looked) >= 2
    assert not [m for m, _args in host_reads_asked if m == "left4me.l4d2.server_logs"]


def test_a_refused_command_is_explained_and_kept_nowhere(core, alice, host_reads_asked):
    server_id = deployed_server(core, alice)
    app = alice.app("console")
    assert [s.label for s in app.selectbox][0] == "Server"
    app.text_input(key=f"command_{server_id}").input("rcon_password hunter2")
    app.button[0].click().run()  # the form's Run button
    assert "rcon_password is refused" in shown(app)
    assert not any("hunter2" in c.value for c in app.code)
    with core.db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM console_history").fetchone()[0] == 0
    assert not [m for m, _args in host_reads_asked if m == "left4me.l4d2.rcon"]


def test_an_answer_is_shown_as_text_with_where_its_time_went(core, alice, host_reads_asked):
    server_id = deployed_server(core, alice)
    app = alice.app("console")
    app.text_input(key=f"command_{server_id}").input("status")
    app.button[0].click().run()
    assert not app.exception and not app.error
    assert STATUS.rstrip("\n") in [c.value for c in app.code]  # as text, never markdown
    said = [t.value for t in app.text if t.value.startswith("] status")]
    assert len(said) == 1 and re.fullmatch(
        r"\] status   \(answered in \d+\.\d\d s, 0\.03 s of it on the host\)", said[0]), said


def captions(app) -> str:
    return "\n".join(c.value for c in app.caption)


def test_the_page_says_the_console_is_slower_on_the_ansible_path(core, alice,
                                                                 host_reads_asked):
    deployed_server(core, alice)
    app = alice.app("console")
    assert "This console is slower here" in captions(app)
    assert "refresh every 3 s" in "\n".join(t.label for t in app.toggle)


def test_over_the_fast_path_the_page_does_not_say_slower(core, alice, host_reads_asked,
                                                         monkeypatch):
    core.settings = replace(core.settings, fast_reads=True)
    asked = []

    def fast(target, _control_dir, verb, instance, args, _deadline):
        asked.append((target.host, verb, instance))
        if verb == "rcon":
            return ModuleRun(True, "", {"output": STATUS, "seconds": 0.03})
        return ModuleRun(True, "", {"lines": LOG_LINES, "cursor": "s=1"})
    monkeypatch.setattr(host_reads, "ask", fast)
    monkeypatch.setattr(live, "follow_log",  # the log's follower: the test below
                        lambda *_args: LogView(tuple(LOG_LINES), "s=1", 1, None, True))
    server_id = deployed_server(core, alice)
    app = alice.app("console")
    assert "slower" not in captions(app)
    assert "new lines show within a second" in "\n".join(t.label for t in app.toggle)
    app.text_input(key=f"command_{server_id}").input("status")
    app.button[0].click().run()
    assert STATUS.rstrip("\n") in [c.value for c in app.code]
    assert ("alpha", "rcon", "mine1") in asked and host_reads_asked == []
