"""The script editor on the Overlays page, driven with AppTest: create from an example,
edit and save, refusals in words, build on a host (job panel) and the last build's outcome
and output (a failed one says the previous build is still in use)."""

from __future__ import annotations

from left4me_ui import jobs, overlays
from left4me_ui.overlays.kinds import script as overlay_script


def shown(app) -> str:
    return "\n".join(e.value for e in app.error).replace("\\", "")


def button(app, label: str):
    return next(b for b in app.button if b.label == label)


def test_a_script_overlay_is_created_from_an_example_and_edited(core, alice):
    app = alice.app("overlays")
    app.text_input(key="new_script_overlay_id").input("my-maps")
    app.selectbox(key="new_script_seed").select("cedapug-maps.sh")
    button(app, "Create script overlay").click().run()
    assert not app.exception
    (made,) = overlays.list_for(core, alice.actor)
    assert (made.id, made.kind) == ("my-maps", "script")
    example = overlay_script.example_text("cedapug-maps.sh")
    area = app.text_area(key="script_text_my-maps_1")
    assert (area.label, area.value) == ("Script", example)

    area.input("#!/bin/sh\necho hi > /overlay/hi.txt\n")
    button(app, "Save script").click().run()
    assert not app.exception
    assert overlay_script.script(core, alice.actor, "my-maps") == \
        "#!/bin/sh\necho hi > /overlay/hi.txt\n"
    assert app.text_area(key="script_text_my-maps_2").value == \
        "#!/bin/sh\necho hi > /overlay/hi.txt\n"

    app.text_area(key="script_text_my-maps_2").input("echo \0\n")
    button(app, "Save script").click().run()
    assert "the script contains a NUL byte" in shown(app)
    assert overlays.get(core, alice.actor, "my-maps").revision == 2

    app.selectbox(key="script_example").select("tickrate-pack.sh")
    button(app, "Replace the script with this example").click().run()
    assert overlay_script.script(core, alice.actor, "my-maps") == \
        overlay_script.example_text("tickrate-pack.sh")


def test_build_on_host_shows_the_job_and_a_failure_keeps_the_previous_build(core, alice,
                                                                           bob):
    overlay_script.create(core, alice.actor, "my-maps")
    overlay_script.save(core, alice.actor, "my-maps", "#!/bin/sh\necho v1\n")
    app = alice.app("overlays")
    assert "Not built on any host yet (revision 2 now)." in [t.value for t in app.text]
    app.selectbox(key="script_build_host").select("alpha")
    button(app, "Build on host").click().run()
    assert not app.exception
    (job,) = jobs.history(core, alice.actor)
    assert job.extravars["left4me_overlay_script"] == "#!/bin/sh\necho v1\n"
    assert [p.proto.text for p in app.get("progress")] == [
        f"Job {job.id} (overlay build): queued, 0 of {overlay_script.SCRIPT_BUILD_TASKS} tasks"]
    assert jobs.history(core, bob.actor) == []

    def finish(state: str, lines: list[str]) -> None:  # the worker's part, without ansible
        claimed = jobs.claim(core)
        jobs._Run(core, claimed).event({
            "event": "runner_on_ok", "stdout": "ok: [alpha] => \n  msg:\n"
            + "".join(f"  - {line}\n" for line in lines),
            "event_data": {"host": "alpha", "task": overlay_script.LOG_TASK}})
        with core.db.connect() as conn:
            jobs._finish(conn, core, claimed, state, 0, None)

    finish(jobs.SUCCEEDED, ["v1"])
    overlay_script.save(core, alice.actor, "my-maps", "#!/bin/sh\necho broken >&2\nexit 1\n")
    overlays.build(core, alice.actor, "my-maps", "alpha")
    finish(jobs.FAILED, ["broken"])
    app = alice.app("overlays")
    assert not app.exception
    assert "build failed; the previous build (revision 2) is still what servers use on" \
        " alpha" in shown(app)
    assert [c.value for c in app.code] == ["broken"]  # the last build's output, monospace
