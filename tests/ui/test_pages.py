"""Every page, driven with AppTest as a signed-in person would use it.

What a person notices: which pages they are offered, what a page lists, what a form does,
what they are refused and how it is worded. The domain's own rules are tested in
tests/ui/domain/; here the pages must show them faithfully.
"""

from __future__ import annotations

from collections import Counter

import frame
import pytest
from streamlit.testing.v1 import AppTest

from left4me_ui import accounts, blueprints, host_reads, jobs, servers, status
from left4me_ui.inventory import Inventory
from left4me_ui.runner import ModuleRun
from tests.ui.conftest import UI, Person


def titles(app: AppTest) -> list[str]:
    return [t.value for t in app.title]


def texts(app: AppTest) -> str:
    return "\n".join(t.value for t in app.text)


def table(app: AppTest, index: int = 0) -> list[dict]:
    return app.dataframe[index].value.to_dict("records")


def make_blueprint(core, person: Person, name: str = "coop") -> blueprints.Blueprint:
    return blueprints.create(core, person.actor, name, ["demo-config"],
                             blueprints.BlueprintSettings(hostname="My coop"))


# --- the frame --------------------------------------------------------------------------------


def test_without_a_session_the_app_shows_no_page(core):
    app = AppTest.from_file(str(UI / "app.py"), default_timeout=30).run()
    assert not app.exception
    assert titles(app) == ["left4me"]
    assert "not logged in" in app.info[0].value


def test_an_ended_session_shows_no_page(core, alice):
    accounts.logout(core, alice.token)
    app = alice.app()
    assert titles(app) == ["left4me"]
    assert "session has ended" in app.info[0].value


def test_a_user_lands_on_servers_and_cannot_open_admin_pages(core, alice):
    app = alice.app()
    assert not app.exception
    assert titles(app) == ["Servers"]
    assert "Signed in as alice (user)" in texts(app)
    for admin_page in ("users", "audit", "hosts"):
        # not in a user's navigation at all: there is no such page to switch to
        with pytest.raises(ValueError, match="Could not find a navigation page") as refused:
            app.switch_page(f"pages/{admin_page}.py")
        known = str(refused.value).split("Known pages:")[1]
        assert "servers.py" in known and f"{admin_page}.py" not in known


def test_an_admin_opens_the_admin_pages(core, admin):
    assert titles(admin.app("users")) == ["Users"]
    assert titles(admin.app("audit")) == ["Audit"]


def test_a_page_that_fails_unexpectedly_shows_a_neutral_message_and_logs_it(
        core, alice, monkeypatch, caplog):
    import sqlite3

    def locked(*_args, **_kwargs):
        raise sqlite3.OperationalError(f"database is locked: {core.settings.db_path}")

    monkeypatch.setattr(servers, "list_for", locked)  # the page a user lands on
    with caplog.at_level("ERROR", logger="left4me_ui"):
        app = alice.app()
    # no traceback, path or SQL error on the page; the frame (sidebar) is still there
    assert not app.exception
    assert "Something went wrong on our side" in app.error[0].value
    shown = "\n".join(str(e.value) for e in (*app.error, *app.text, *app.markdown))
    assert "database is locked" not in shown and str(core.settings.db_path) not in shown
    assert "Signed in as alice (user)" in texts(app)
    # the log has it all
    assert "database is locked" in caplog.text and "alice" in caplog.text


def test_an_error_outside_the_frames_catch_shows_no_details(core, alice, monkeypatch):
    # A fragment's rerun (and AppTest's switch_page) runs a page without ui/app.py around it:
    # Streamlit itself shows the error then, without type, message or traceback.
    import sqlite3

    def locked(*_args, **_kwargs):
        raise sqlite3.OperationalError(f"database is locked: {core.settings.db_path}")

    monkeypatch.setattr(jobs, "history", locked)
    app = alice.app("jobs")
    shown = "\n".join(f"{e.message} {e.stack_trace}" for e in app.exception)
    assert app.exception and "database is locked" not in shown
    assert "OperationalError" not in shown and "jobs.py" not in shown


# Log out is a sidebar button of the frame (ui/app.py). AppTest reruns only the page after
# the first run, so the browser test (test_browser.py) clicks it.


# --- blueprints -------------------------------------------------------------------------------


def test_create_a_blueprint_from_the_form(core, alice):
    app = alice.app("blueprints")
    assert "You have no blueprints yet" in texts(app)
    form_inputs = {t.label: t for t in app.text_input}
    form_inputs["Name"].input("versus night")
    form_inputs["Server name shown in the browser"].input("**not bold** [link](http://x)")
    assert app.multiselect[0].options == ["demo-config"]  # demo-coop is not offered to users
    app.multiselect[0].select("demo-config")
    app.button[0].click().run()  # the form's submit button is the first button
    assert not app.exception
    assert [b.name for b in blueprints.list_for(core, alice.actor)] == ["versus night"]
    made = blueprints.list_for(core, alice.actor)[0]
    assert made.overlays == ("demo-config",)
    assert table(app)[0]["name"] == "versus night"


def test_a_blueprint_sets_its_servers_limits_within_the_ceiling(core, alice):
    app = alice.app("blueprints")
    form_inputs = {t.label: t for t in app.text_input}
    form_inputs["Name"].input("small")
    form_inputs["Memory limit"].input("3G")
    app.button[0].click().run()
    assert "memory_max 3G is above the 2G an admin allows" in app.error[0].value.replace(
        "\\", "")
    assert blueprints.list_for(core, alice.actor) == []
    form_inputs = {t.label: t for t in app.text_input}  # the form was cleared on submit
    form_inputs["Name"].input("small")
    form_inputs["Memory limit"].input("1G")
    numbers = {n.label: n for n in app.number_input}
    numbers["Task limit"].set_value(128)
    numbers["CPU limit (% of one core)"].set_value(50)
    app.button[0].click().run()
    assert not app.exception
    made = blueprints.list_for(core, alice.actor)[0]
    assert (made.settings.memory_max, made.settings.tasks_max, made.settings.cpu_quota) == (
        "1G", 128, 50)
    assert table(app)[0]["limits"] == "memory 1G, 128 tasks, CPU 50%"


def test_a_refused_blueprint_says_why_and_changes_nothing(core, alice):
    app = alice.app("blueprints")
    {t.label: t for t in app.text_input}["Name"].input("bad/name")
    app.button[0].click().run()
    assert "blueprint name" in app.error[0].value
    assert blueprints.list_for(core, alice.actor) == []


def test_a_blueprint_in_use_cannot_be_deleted(core, alice):
    made = make_blueprint(core, alice)
    servers.create(core, alice.actor, "coop2", "alpha", made.id)
    app = alice.app("blueprints")
    delete = next(b for b in app.button if b.label == "Delete this blueprint")
    assert delete.disabled
    assert "restart to apply" in app.caption[-1].value


# --- servers ----------------------------------------------------------------------------------


def test_create_a_server_then_see_its_connect_line_and_queued_job(core, alice):
    make_blueprint(core, alice)
    app = alice.app("servers")
    assert "You have no servers yet." in texts(app)
    {t.label: t for t in app.text_input}["Name"].input("coop2")
    next(b for b in app.button if b.label == "Create server").click().run()
    assert not app.exception
    [server] = servers.list_for(core, alice.actor)
    assert server.name == "coop2"
    assert table(app)[0]["name"] == "coop2"
    assert table(app)[0]["wanted"] == "being created"
    assert app.code[0].value == f"connect 192.0.2.10:{server.port}"
    assert app.query_params["server"] == [str(server.id)] or \
        app.query_params["server"] == str(server.id)
    # the job is on the page with its progress (queued: no worker in this test)
    assert any(f"{jobs.history(core, alice.actor)[0].id} (server create): queued" in p.text
               for p in app.get("progress")) or "queued" in str(app.get("progress"))


def test_start_stop_restart_each_queue_a_job(core, alice):
    server_id, _ = servers.create(core, alice.actor, "coop2", "alpha",
                                  make_blueprint(core, alice).id)
    app = alice.app("servers")
    for label, kind in (("Stop", servers.KIND_STOP), ("Start", servers.KIND_START),
                        ("Restart", servers.KIND_RESTART)):
        next(b for b in app.button if b.label == label).click().run()
        assert not app.exception
        assert jobs.history(core, alice.actor, server_id=server_id)[0].kind == kind


def test_delete_needs_the_name_typed(core, alice):
    server_id, _ = servers.create(core, alice.actor, "coop2", "alpha",
                                  make_blueprint(core, alice).id)
    app = alice.app("servers")
    app.text_input(key=f"confirm_delete_{server_id}").input("coop")
    app.button(key="delete_server").click().run()
    assert "type the server" in app.error[0].value
    assert not servers.get(core, alice.actor, server_id).deleting
    app.text_input(key=f"confirm_delete_{server_id}").input("coop2")
    app.button(key="delete_server").click().run()
    assert servers.get(core, alice.actor, server_id).deleting
    assert table(app)[0]["wanted"] == "being deleted"


def test_another_user_sees_none_of_alices_servers_or_jobs(core, alice, bob):
    servers.create(core, alice.actor, "coop2", "alpha", make_blueprint(core, alice).id)
    app = bob.app("servers")
    assert "You have no servers yet." in texts(app)
    assert not app.dataframe
    assert "No jobs yet" in texts(bob.app("jobs"))


def test_an_admin_sees_everyones_servers_with_their_owner(core, alice, admin):
    servers.create(core, alice.actor, "coop2", "alpha", make_blueprint(core, alice).id)
    rows = table(admin.app("servers"))
    assert [(r["name"], r["owner"]) for r in rows] == [("coop2", "alice")]


# --- jobs -------------------------------------------------------------------------------------


def test_jobs_page_lists_history_and_shows_the_chosen_jobs_log(core, alice):
    server_id, job_id = servers.create(core, alice.actor, "coop2", "alpha",
                                       make_blueprint(core, alice).id)
    app = alice.app("jobs")
    assert not app.exception
    assert [r["job"] for r in table(app)] == [job_id]
    assert app.code[0].value == "(no output yet)"
    assert any(b.label == "Cancel job" for b in app.button)
    next(b for b in app.button if b.label == "Cancel job").click().run()
    assert jobs.get(core, alice.actor, job_id).state == jobs.CANCELLED


# --- account, users, audit ---------------------------------------------------------------------


def _password_form(app: AppTest, current: str, new: str, again: str) -> AppTest:
    fields = app.text_input
    fields[0].input(current)
    fields[1].input(new)
    fields[2].input(again)
    return app.button[-1].click().run()


def test_password_change_keeps_this_session_and_ends_the_others(core, alice):
    other = accounts.login(core, "alice", "correct horse battery", client="10.0.0.2")
    app = _password_form(alice.app("account"), "correct horse battery",
                         "a much better password", "a much better password")
    assert "Password changed" in app.success[0].value
    assert accounts.validate_session(core, alice.token) is not None
    assert accounts.validate_session(core, other.token) is None


def test_password_change_with_the_wrong_current_password_is_refused(core, alice):
    app = _password_form(alice.app("account"), "wrong", "a much better password",
                         "a much better password")
    assert "current password is wrong" in app.error[0].value
    assert accounts.login(core, "alice", "correct horse battery", client="x")


def test_admin_adds_a_user_who_can_then_log_in(core, admin):
    app = admin.app("users")
    fields = {t.label: t for t in app.text_input}
    fields["User name"].input("carol")
    fields["Initial password"].input("carols first password")
    next(b for b in app.button if b.label == "Add user").click().run()
    assert not app.exception
    assert "carol" in [r["name"] for r in table(app)]
    assert accounts.login(core, "carol", "carols first password", client="x").actor.name == \
        "carol"


def test_admin_disables_a_user_and_their_session_ends(core, admin, alice):
    app = admin.app("users")
    app.selectbox[-1].select(next(o for o in app.selectbox[-1].options if o == "alice"))
    app.button(key="toggle_disabled").click().run()
    assert accounts.validate_session(core, alice.token) is None
    # The page redraws with the new state and says what happened.
    assert [s.value.replace("\\", "") for s in app.success] == ["User disabled."]
    assert {r["name"]: r["disabled"] for r in table(app)}["alice"] == "yes"


def test_admin_resets_a_password_and_the_users_sessions_end(core, admin, alice):
    app = admin.app("users")
    app.selectbox[-1].select("alice")
    next(t for t in app.text_input if t.label == "New password").input("alices new password")
    next(b for b in app.button if b.label.startswith("Reset password")).click().run()
    assert not app.exception
    assert [s.value.replace("\\", "") for s in app.success] == \
        ["Password reset; their sessions have ended."]
    assert accounts.validate_session(core, alice.token) is None
    assert accounts.login(core, "alice", "alices new password", client="x").actor.name == \
        "alice"


def test_audit_page_lists_logins_newest_first(core, admin, alice):
    rows = table(admin.app("audit"))
    assert [(r["who"], r["action"]) for r in rows[:2]] == [("alice", "login"), ("boss", "login")]


def test_user_text_is_never_rendered_as_markdown(core, alice):
    assert frame.plain("**x** [a](b) <i>") == r"\*\*x\*\* \[a\]\(b\) \<i\>"


FIVE_HOSTS = Inventory({f"host{n}": {"ansible_host": f"192.0.2.{20 + n}", "overlays_list": [
    {"id": "demo-config", "kind": "files", "users_may_stack": True}]} for n in range(5)})


@pytest.mark.parametrize("core_inventory", [FIVE_HOSTS])
def test_the_servers_page_with_50_servers_on_5_hosts_asks_each_host_at_most_once(
        core, admin, monkeypatch):
    """Issue 19: opening the page costs at most one request per host, however many servers
    it lists (the list's states come from the poller; the shown server's status is one
    `info` read of its host for all of that host's servers)."""
    accounts.set_max_servers(core, admin.actor, admin.actor.user_id, 50)
    blueprint = make_blueprint(core, admin)
    for number in range(50):
        servers.create(core, admin.actor, f"s{number}", f"host{number % 5}", blueprint.id)
    with core.db.connect() as conn:  # as if their create jobs had run
        conn.execute("UPDATE servers SET applied_revision = 1")
    asked = []

    def read(_core, host, verb, instance, _args, _deadline):
        asked.append((host, verb, instance))
        return ModuleRun(True, "", {"instances": [
            {"name": f"s{n}", "active_state": "active", "sub_state": "running",
             "result": "success"} for n in range(50)]})

    monkeypatch.setattr(host_reads, "read", read)
    monkeypatch.setattr(status, "a2s_info", lambda *_args, **_kwargs: None)  # no host asked
    app = admin.app("servers")
    assert not app.exception
    assert len(table(app)) == 50 and "Status: started, not answering A2S" in texts(app)
    assert asked and max(Counter(host for host, _verb, _name in asked).values()) == 1, asked
