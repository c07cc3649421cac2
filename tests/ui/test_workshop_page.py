"""The Overlays page's Workshop editor, driven with AppTest: create a Workshop overlay, paste
ids and links (a bad line refused in words, nothing saved), Resolve shows each item's title,
size and last update, Build on host queues its job and shows its panel. (The resolve itself,
through a host against the stand-in Web API, is tests/ui/domain/test_workshop_overlays.py's.)"""

from __future__ import annotations

from left4me_ui import jobs, overlays
from left4me_ui.overlays.kinds import workshop
from left4me_ui.runner import ModuleRun

LINK = "https://steamcommunity.com/sharedfiles/filedetails/?id=1000000002"


def shown(app) -> str:
    return "\n".join(e.value for e in app.error).replace("\\", "")


def test_a_workshop_overlay_is_created_edited_resolved_and_built(core, alice, bob,
                                                                 monkeypatch):
    app = alice.app("overlays")
    app.text_input(key="new_overlay_id").input("my-maps")
    app.radio(key="new_overlay_kind").set_value("workshop")
    app.button[0].click().run()  # the create form's button
    assert not app.exception
    assert [(o.id, o.kind) for o in overlays.list_for(core, alice.actor)] == [
        ("my-maps", "workshop")]

    app.text_area(key="workshop_items_my-maps").input(f"1000000001\nnot a link\n{LINK}")
    next(b for b in app.button if b.label == "Save items").click().run()
    assert "Items, line 2: 'not a link' is not a Workshop id or link" in shown(app)
    assert workshop.definition(core, alice.actor, "my-maps").empty

    app.text_area(key="workshop_items_my-maps").input(f"1000000001\n{LINK}")
    app.text_area(key="workshop_collections_my-maps").input("3000000001")
    next(b for b in app.button if b.label == "Save items").click().run()
    assert "Saved the Workshop items." in [s.value.replace("\\", "") for s in app.success]
    assert workshop.definition(core, alice.actor, "my-maps") == workshop.Definition(
        ("1000000001", "1000000002"), ("3000000001",))
    assert "Resolve to see each item's title, size and last update." in [
        t.value for t in app.text]

    asked = []

    def host_answers(core_, host, module, args, timeout, **options):
        asked.append((host, module, args["items"], args["collections"], options["check"]))
        return ModuleRun(True, "", {"collections": ["3000000001"], "items": [
            {"publishedfileid": "1000000001", "title": "Dead Center Remix",
             "file_size": 3 * 1024 * 1024, "time_updated": 1700000000, "status": "cached"},
            {"publishedfileid": "1000000002", "title": "", "status": "error",
             "error": "item 1000000002: banned by Steam (spam)"}]})

    monkeypatch.setattr(workshop, "run_module", host_answers)
    app.selectbox(key="workshop_host").select("alpha")
    app.button(key="workshop_resolve").click().run()
    assert not app.exception
    assert asked == [("alpha", "left4me.l4d2.workshop_overlay", ["1000000001", "1000000002"],
                      ["3000000001"], True)]
    assert app.dataframe[1].value.to_dict("records") == [
        {"id": "1000000001", "title": "Dead Center Remix", "size": "3.0 MiB",
         "last update (UTC)": "2023-11-14 22:13:20", "state": "in the host's cache"},
        {"id": "1000000002", "title": "", "size": "", "last update (UTC)": "",
         "state": "error: item 1000000002: banned by Steam (spam)"}]

    app.button(key="workshop_build").click().run()
    assert not app.exception
    (job,) = jobs.history(core, alice.actor)
    assert (job.kind, job.host, job.playbook) == ("overlay build", "alpha",
                                                  "workshop_overlay.yml")
    assert [p.proto.text for p in app.get("progress")][0].startswith(
        f"Job {job.id} (overlay build): queued")
    # bob sees no overlay of alice's, so no editor.
    assert "You have no overlays yet" in "\n".join(t.value for t in bob.app("overlays").text)
