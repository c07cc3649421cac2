"""Overlays: your own files overlays (configs, cfg packs, add-ons) and Workshop overlays
(ui/workshop_editor.py) that blueprints stack.

A build puts an overlay's files on a host (a playbooks/overlay.yml job); a server stacking
it builds it there first when the host's copy is older, so "Build on host" is for seeing
the result early. Servers take a new build at their next restart.

Every rule (who may, paths kept inside, limits, zip checks) is the domain's
(left4me_ui.overlays); this page draws the tree and hands each action over. A script
overlay (its build script runs on the host in a sandbox) gets the editor of
ui/script_editor.py instead of the tree.
"""

import frame
import overlay_parts
import script_editor
import streamlit as st
import workshop_editor

from left4me_ui import disk_share, overlays, servers

actor = frame.require_actor()
core = frame.domain()
st.title("Overlays")
frame.show_flash()

mine = frame.load(lambda: overlays.list_for(core, actor))
limits = core.settings


def _mib(n: int) -> int:
    """Bytes as the whole MiB a file uploader's max_upload_size takes (rounded up)."""
    return -(-n // (1024 * 1024))


def built_on(overlay: overlays.Overlay) -> str:
    found = frame.attempt(lambda: overlays.builds(core, actor, overlay.id))
    if found is frame.REFUSED:
        return ""
    return ", ".join(f"{b.host} r{b.revision}" + ("" if b.current else " (out of date)")
                     for b in found)


if mine:
    st.dataframe(
        [{"id": o.id, "kind": o.kind, "owner": o.owner_name, "revision": o.revision,
          "used by blueprints": o.used_by_text(quoted=False), "built on": built_on(o),
          "changed (UTC)": frame.when(o.updated_at)}
         for o in mine],
        hide_index=True, width="stretch",
    )
else:
    st.text("You have no overlays yet. Create one, then add files to it.")
# Each overlay counts at its cap against the user's disk share, servers at their writes cap.
st.caption(frame.load(lambda: disk_share.for_actor(core, actor)).text)

with (st.expander("Create an overlay", icon=":material/add:", expanded=not mine),
      st.form("create_overlay", clear_on_submit=True)):
    new_id = st.text_input("Overlay id", key="new_overlay_id",
                           help=f"The folder name on every host: {overlays.ID_RULE}")
    # A script overlay starts from an example: its own form, below.
    new_kind = st.radio("Kind", ("files", "workshop"), horizontal=True,
                        key="new_overlay_kind",
                        help="files: text files you edit here; workshop: Steam Workshop"
                             " items and collections, downloaded on the host")
    if st.form_submit_button("Create overlay", type="primary"):
        frame.act(lambda: overlays.create(core, actor, new_id, new_kind), "Overlay created.")
script_editor.create_form(core, actor, expanded=False)

if not mine:
    st.stop()

st.subheader("Contents")
chosen = st.selectbox("Overlay", mine, format_func=lambda o: f"{o.id} ({o.kind})",
                      key="overlay")
if chosen.kind == "workshop":
    workshop_editor.draw(core, actor, chosen)
    st.stop()
if chosen.kind == "script":
    script_editor.show(core, actor, chosen)
    st.stop()
entries = frame.load(lambda: overlays.tree(core, actor, chosen.id))
files = [e.path for e in entries if not e.is_dir and not e.refused]
folders = [e.path for e in entries if e.is_dir]
used = sum(e.size for e in entries)
size = overlays.size_text
st.caption(f"{len(entries)} of {limits.overlay_max_entries} files and folders,"
           f" {size(used)} of {size(limits.overlay_max_total_bytes)};"
           f" one file at most {size(limits.overlay_max_file_bytes)}. Paths are relative to"
           " the game root, e.g. left4dead2/cfg/server.cfg.")
if entries:
    st.dataframe([{"path": e.path, "type": "link (refused)" if e.is_symlink else
                   "folder too deep (refused)" if e.too_deep else
                   "folder" if e.is_dir else "file", "size": "" if e.is_dir else size(e.size)}
                  for e in entries], hide_index=True, width="stretch")
else:
    st.text("This overlay is empty.")
if any(e.is_symlink for e in entries):
    st.warning("This overlay holds a symbolic link left4me did not make; left4me never"
               " follows one. Delete it below.", icon=":material/warning:")
if any(e.too_deep for e in entries):
    st.warning(f"This overlay holds folders more than {overlays.MAX_PATH_PARTS} levels deep"
               " (made before that limit); it cannot be built until you delete them below.",
               icon=":material/warning:")

edit, upload, arrange, hosts, whole = st.tabs(["Edit text", "Upload", "Folders, rename, delete",
                                               "Build on host", "Download or delete overlay"])

with edit:
    NEW = "(a new file)"
    target = st.selectbox("File", [NEW, *files], key="edit_file")
    path = st.text_input("New file's path", key="edit_path",
                         placeholder="left4dead2/cfg/server.cfg") if target == NEW else target
    current = ""
    if target != NEW:
        current = frame.attempt(lambda: overlays.read_text(core, actor, chosen.id, target))
    if current is not frame.REFUSED:  # a file that is not text is never overwritten from here
        with st.form(f"edit_{chosen.id}_{target}"):
            text = st.text_area("Text", value=current, height=300,
                                key=f"edit_text_{chosen.id}_{target}")
            if st.form_submit_button("Save", type="primary"):
                frame.act(lambda: overlays.write_text(core, actor, chosen.id, path, text),
                          f"Saved {path}.")

with upload:
    with st.form(f"upload_{chosen.id}", clear_on_submit=True):
        into = st.text_input("Into folder (empty: the overlay's top)", key="upload_into",
                             placeholder="left4dead2/addons")
        extract = st.checkbox("Extract .zip files into the overlay", value=True,
                              key="upload_extract")
        # Each widget's own cap is the most the domain may take from it (a zip: up to the
        # overlay's total; a folder's files: one file's limit). Their "N per file" text is
        # hidden: Streamlit rounds 512 MiB to "1GB"; the caption below says the limits.
        st.html("<style>.st-key-upload_files [data-testid=stFileUploaderDropzoneInstructions],"
                " .st-key-upload_folder [data-testid=stFileUploaderDropzoneInstructions]"
                " {display: none}</style>")
        largest = max(limits.overlay_max_file_bytes, limits.overlay_max_total_bytes)
        uploaded = st.file_uploader("Files or a zip", accept_multiple_files=True,
                                    key="upload_files", max_upload_size=_mib(largest))
        folder = st.file_uploader("Or a folder (its files keep their paths, the folder's"
                                  " name first)", accept_multiple_files="directory",
                                  key="upload_folder",
                                  max_upload_size=_mib(limits.overlay_max_file_bytes))
        chosen_files = [*(uploaded or []), *(folder or [])]
        if st.form_submit_button("Upload into the overlay", type="primary") and chosen_files:
            def store() -> None:
                plain = []
                for item in uploaded or []:
                    if extract and not into and item.name.lower().endswith(".zip"):
                        overlays.import_zip(core, actor, chosen.id, item.getvalue())
                    else:
                        plain.append((item.name, item.getvalue()))
                plain += [(item.name, item.getvalue()) for item in folder or []]
                if plain:  # all or nothing: one refused file and none is stored
                    overlays.upload_files(core, actor, chosen.id, plain, into)
            frame.act(store, f"Uploaded {len(chosen_files)} file(s).")
    st.caption(
        f"One file may be up to {size(limits.overlay_max_file_bytes)} and"
        f" the whole overlay up to {size(limits.overlay_max_total_bytes)}."
        " A zip is extracted at the overlay's top (leave the folder empty); entries leaving"
        " the overlay, links and zip bombs are refused and nothing changes.")

with arrange:
    with st.form(f"folder_{chosen.id}", clear_on_submit=True):
        folder = st.text_input("New folder", key="new_folder", placeholder="left4dead2/cfg")
        if st.form_submit_button("Create folder"):
            frame.act(lambda: overlays.make_folder(core, actor, chosen.id, folder),
                      f"Created {folder}.")
    everything = [e.path for e in entries]
    if everything:
        with st.form(f"move_{chosen.id}"):
            source = st.selectbox("Rename or move", everything, key="move_source")
            destination = st.text_input("To", key="move_to")
            if st.form_submit_button("Rename or move"):
                frame.act(lambda: overlays.move(core, actor, chosen.id, source, destination),
                          f"Moved {source} to {destination}.")
        with st.form(f"remove_{chosen.id}"):
            doomed = st.selectbox("Delete", everything, key="remove_path")
            sure = st.checkbox("Yes, delete it (a folder with everything in it)",
                               key="remove_sure")
            if st.form_submit_button("Delete", type="primary"):
                if sure:
                    frame.act(lambda: overlays.remove(core, actor, chosen.id, doomed),
                              f"Deleted {doomed}.")
                else:
                    st.error("Tick the box to confirm.", icon=":material/block:")

with hosts:
    overlay_parts.builds_table(core, actor, chosen)
    st.caption("A server stacking this overlay builds it on its host first when that host's"
               " copy is older; a running server takes a new build at its next restart.")
    choices = frame.attempt(lambda: servers.hosts_for(core, actor))
    if choices is not frame.REFUSED and choices:
        host = st.selectbox("Host", choices, key="build_host")
        if st.button("Build on host", icon=":material/build:", key="build_overlay"):
            queued = frame.attempt(lambda: overlays.build(core, actor, chosen.id, host))
            if queued is not frame.REFUSED:
                st.session_state[f"overlay_build_job_{chosen.id}"] = queued
    if st.session_state.get(f"overlay_build_job_{chosen.id}"):
        frame.job_panel(st.session_state[f"overlay_build_job_{chosen.id}"], key="overlay_build")

with whole:
    prepared_key = f"_overlay_zip_{chosen.id}_{chosen.revision}"
    if prepared_key not in st.session_state and st.button(
            "Prepare a zip of this overlay", icon=":material/folder_zip:", key="prepare_zip"):
        archive = frame.attempt(lambda: overlays.export_zip(core, actor, chosen.id))
        if archive is not frame.REFUSED:
            st.session_state[prepared_key] = archive
    if prepared_key in st.session_state:
        st.download_button("Download zip", st.session_state[prepared_key],
                           file_name=f"{chosen.id}.zip", mime="application/zip",
                           icon=":material/download:", key="download_zip")
    overlay_parts.delete_button(core, actor, chosen)
