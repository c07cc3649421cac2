"""The overlays page, driven with AppTest: create, see the tree, edit text, make folders,
rename, delete, download, and the domain's refusals shown in words. (AppTest cannot drive
a file uploader; uploads and zip imports are the domain's, tests/ui/domain/test_overlays.py.)"""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

from left4me_ui import blueprints, overlays


def shown(app) -> str:
    """Errors as a person reads them (the frame escapes markdown)."""
    return "\n".join(e.value for e in app.error).replace("\\", "")


def confirmed(app) -> list[str]:
    """Confirmations as a person reads them (the frame escapes markdown)."""
    return [s.value.replace("\\", "") for s in app.success]


def tree(app) -> list[dict]:
    return app.dataframe[1].value.to_dict("records")


def test_an_overlay_is_created_and_its_text_edited_on_the_page(core, alice):
    app = alice.app("overlays")
    assert not app.exception
    assert "You have no overlays yet" in "\n".join(t.value for t in app.text)
    app.text_input(key="new_overlay_id").input("my-cfg")
    app.button[0].click().run()  # the create form's button
    assert [o.id for o in overlays.list_for(core, alice.actor)] == ["my-cfg"]
    assert "Overlay created." in confirmed(app)
    # The upload's limits in the domain's numbers (the widget's own cap would say 200MB).
    assert any("One file may be up to 64.0 MiB and the whole overlay up to 512.0 MiB" in c.value
               for c in app.caption), [c.value for c in app.caption]

    app.text_input(key="edit_path").input("left4dead2/cfg/server.cfg")
    app.text_area(key="edit_text_my-cfg_(a new file)").input("sv_cheats 0\n")
    next(b for b in app.button if b.label == "Save").click().run()
    assert not app.exception
    assert overlays.read_text(core, alice.actor, "my-cfg", "left4dead2/cfg/server.cfg") == \
        "sv_cheats 0\n"
    assert tree(app) == [
        {"path": "left4dead2", "type": "folder", "size": ""},
        {"path": "left4dead2/cfg", "type": "folder", "size": ""},
        {"path": "left4dead2/cfg/server.cfg", "type": "file", "size": "12 bytes"}]


def test_a_path_leaving_the_overlay_is_refused_in_words(core, alice):
    overlays.create(core, alice.actor, "my-cfg")
    app = alice.app("overlays")
    app.text_input(key="edit_path").input("../../etc/cron.d/evil")
    app.text_area(key="edit_text_my-cfg_(a new file)").input("* * * * * root sh\n")
    next(b for b in app.button if b.label == "Save").click().run()
    assert "has an empty, '.' or '..' component; paths stay inside the overlay" in shown(app)
    assert overlays.tree(core, alice.actor, "my-cfg") == []


def test_a_binary_file_is_not_offered_for_text_editing(core, alice):
    overlays.create(core, alice.actor, "my-cfg")
    overlays.upload(core, alice.actor, "my-cfg", "map.vpk", b"\xff\x00")
    overlays.write_text(core, alice.actor, "my-cfg", "motd.txt", "hi\n")
    app = alice.app("overlays")
    app.selectbox(key="edit_file").select("motd.txt").run()
    assert app.text_area(key="edit_text_my-cfg_motd.txt").value == "hi\n"
    app.selectbox(key="edit_file").select("map.vpk").run()
    assert "map.vpk is not UTF-8 text; download it instead" in shown(app)
    assert not [b for b in app.button if b.label == "Save"]  # nothing to overwrite it with
    assert overlays.read_bytes(core, alice.actor, "my-cfg", "map.vpk") == b"\xff\x00"


def test_folders_rename_delete_and_download(core, alice):
    overlays.create(core, alice.actor, "my-cfg")
    overlays.write_text(core, alice.actor, "my-cfg", "motd.txt", "hi\n")
    app = alice.app("overlays")
    app.text_input(key="new_folder").input("left4dead2/maps")
    next(b for b in app.button if b.label == "Create folder").click().run()
    assert "left4dead2/maps" in [r["path"] for r in tree(app)]

    app.selectbox(key="move_source").select("motd.txt")
    app.text_input(key="move_to").input("left4dead2/motd.txt")
    next(b for b in app.button if b.label == "Rename or move").click().run()
    assert [r["path"] for r in tree(app)] == ["left4dead2", "left4dead2/maps",
                                             "left4dead2/motd.txt"]

    app.selectbox(key="remove_path").select("left4dead2/maps")
    next(b for b in app.button if b.label == "Delete").click().run()
    assert "Tick the box to confirm." in shown(app)
    app.checkbox(key="remove_sure").check()
    next(b for b in app.button if b.label == "Delete").click().run()
    assert [r["path"] for r in tree(app)] == ["left4dead2", "left4dead2/motd.txt"]

    app.button(key="prepare_zip").click().run()
    assert not app.exception
    revision = overlays.get(core, alice.actor, "my-cfg").revision
    prepared = app.session_state[f"_overlay_zip_my-cfg_{revision}"]  # what Download serves
    with zipfile.ZipFile(io.BytesIO(prepared)) as archive:
        assert archive.read("left4dead2/motd.txt") == b"hi\n"


def test_a_confirmation_shows_a_file_name_as_text_never_as_a_link_or_image(core, alice):
    link, image = "[log in again](https:evil.example)", "![x](https:evil.example)"
    overlays.create(core, alice.actor, "my-cfg")
    overlays.write_text(core, alice.actor, "my-cfg", link, "hi\n")
    overlays.write_text(core, alice.actor, "my-cfg", image, "hi\n")
    app = alice.app("overlays")
    for name in (link, image):
        app.selectbox(key="remove_path").select(name)
        app.checkbox(key="remove_sure").check()
        next(b for b in app.button if b.label == "Delete").click().run()
        assert not app.exception
        [message] = [s.value for s in app.success]
        # Every markdown sign escaped: the name reads as typed, no link or image is drawn.
        assert message.replace("\\", "") == f"Deleted {name}."
        assert "](" not in message and "[" not in message.replace("\\[", "")
    assert overlays.tree(core, alice.actor, "my-cfg") == []


def test_another_user_sees_none_and_an_overlay_in_use_cannot_be_deleted(core, alice, bob):
    overlays.create(core, alice.actor, "my-cfg")
    blueprints.create(core, alice.actor, "coop", ["my-cfg"], blueprints.BlueprintSettings())
    assert "You have no overlays yet" in "\n".join(t.value for t in bob.app("overlays").text)
    app = alice.app("overlays")
    assert app.button(key="delete_overlay").disabled
    assert app.dataframe[0].value.to_dict("records")[0]["used by blueprints"] == "coop"


def test_the_owner_sees_other_users_blueprints_counted_not_named(core, alice, admin):
    overlays.create(core, alice.actor, "my-cfg")
    blueprints.create(core, admin.actor, "boss secret event plan", ["my-cfg"],
                      blueprints.BlueprintSettings())
    app = alice.app("overlays")
    assert not app.exception
    page = "\n".join([*(c.value for c in app.caption),
                      *(str(d.value.to_dict("records")) for d in app.dataframe)])
    assert "boss secret event plan" not in page
    assert app.dataframe[0].value.to_dict("records")[0]["used by blueprints"] == \
        "1 blueprint of other users"
    assert app.button(key="delete_overlay").disabled  # still in use


def test_build_on_host_queues_a_build_and_shows_where_it_is_current(core, alice, bob):
    from left4me_ui import jobs

    overlays.create(core, alice.actor, "my-cfg")
    overlays.write_text(core, alice.actor, "my-cfg", "left4dead2/cfg/server.cfg", "sv_cheats 0\n")
    app = alice.app("overlays")
    assert "Not built on any host yet (revision 2 now)." in [t.value for t in app.text]
    app.selectbox(key="build_host").select("alpha")
    app.button(key="build_overlay").click().run()
    assert not app.exception
    (job,) = jobs.history(core, alice.actor)
    assert (job.kind, job.host, job.extravars["left4me_overlay_id"]) == (
        "overlay build", "alpha", "my-cfg")
    # overlay.yml's tasks, counted before any run
    assert [p.proto.text for p in app.get("progress")] == [
        f"Job {job.id} (overlay build): queued, 0 of 11 tasks"]
    assert jobs.history(core, bob.actor) == []  # bob sees neither the job nor the overlay

    claimed = jobs.claim(core)  # the worker's part, without ansible
    with core.db.connect() as conn:
        jobs._finish(conn, core, claimed, jobs.SUCCEEDED, 0, None)
    overlays.write_text(core, alice.actor, "my-cfg", "motd.txt", "hi\n")
    app = alice.app("overlays")
    assert app.dataframe[0].value.to_dict("records")[0]["built on"] == "alpha r2 (out of date)"
    assert app.dataframe[2].value.to_dict("records")[0]["state"] == \
        "out of date (revision 3 now)"


def test_the_blueprints_page_offers_my_overlays_not_other_users(core, alice, bob):
    overlays.create(core, alice.actor, "my-cfg")
    overlays.create(core, bob.actor, "bob-cfg")
    app = alice.app("blueprints")
    # The inventory's demo-coop is not offered to users (conftest's inventory marks only
    # demo-config users_may_stack).
    assert app.multiselect[0].options == ["demo-config", "my-cfg"]
    {t.label: t for t in app.text_input}["Name"].input("mine")
    app.multiselect[0].select("my-cfg").select("demo-config")
    app.button[0].click().run()
    assert not app.exception
    (made,) = blueprints.list_for(core, alice.actor)
    assert made.overlays == ("my-cfg", "demo-config")
    assert bob.app("blueprints").multiselect[0].options == ["bob-cfg", "demo-config"]


def test_the_disk_share_is_shown_and_a_create_past_it_is_refused_in_words(core, alice):
    core.settings = replace(core.settings, user_disk_max=10 << 30)
    app = alice.app("overlays")
    assert "Disk: the caps of what you own add up to 0 bytes of your 10.0 GiB share" \
        " (10.0 GiB left)" in [c.value for c in app.caption]
    overlays.create(core, alice.actor, "maps", kind="workshop")  # 10 GiB: all of it
    app = alice.app("overlays")
    assert "Disk: the caps of what you own add up to 10.0 GiB of your 10.0 GiB share" \
        " (0 bytes left)" in [c.value for c in app.caption]
    app.text_input(key="new_overlay_id").input("my-cfg")
    app.button[0].click().run()
    assert not app.exception
    assert "files overlay 'my-cfg' may take 512.0 MiB of disk" in shown(app)
    assert "past your 10.0 GiB share (you use 10.0 GiB: Workshop overlay 'maps'" in shown(app)
    assert [o.id for o in overlays.list_for(core, alice.actor)] == ["maps"]
