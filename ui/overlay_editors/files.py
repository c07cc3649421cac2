"""The Overlays page's editor of a files overlay: its tree (sizes against the limits),
then tabs to edit a text file, upload files, a folder or a zip, make folders, rename, move
and delete, build on a host, and download the overlay as a zip or delete it.

Every rule (who may, paths kept inside, limits, zip checks) is the domain's
(left4me_ui.overlays); this draws the tree and hands each action over.
"""

from __future__ import annotations

import frame
import streamlit as st

from left4me_ui import overlays, servers
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.settings import Settings
from overlay_editors import parts

NEW = "(a new file)"
size = overlays.size_text


def _mib(n: int) -> int:
    """Bytes as the whole MiB a file uploader's max_upload_size takes (rounded up)."""
    return -(-n // (1024 * 1024))


def draw(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    entries = frame.load(lambda: overlays.tree(core, actor, chosen.id))
    _contents(entries, core.settings)
    edit, upload, arrange, hosts, whole = st.tabs(
        ["Edit text", "Upload", "Folders, rename, delete", "Build on host",
         "Download or delete overlay"])
    with edit:
        _edit(core, actor, chosen, [e.path for e in entries if not e.is_dir and not e.refused])
    with upload:
        _upload(core, actor, chosen)
    with arrange:
        _arrange(core, actor, chosen, [e.path for e in entries])
    with hosts:
        _build(core, actor, chosen)
    with whole:
        _download_or_delete(core, actor, chosen)


def _contents(entries: list[overlays.Entry], limits: Settings) -> None:
    """The tree as a table, its size against the limits, and what blocks a build."""
    used = sum(e.size for e in entries)
    st.caption(f"{len(entries)} of {limits.overlay_max_entries} files and folders,"
               f" {size(used)} of {size(limits.overlay_max_total_bytes)};"
               f" one file at most {size(limits.overlay_max_file_bytes)}. Paths are relative"
               " to the game root, e.g. left4dead2/cfg/server.cfg.")
    if entries:
        st.dataframe([{"path": e.path, "type": "link (refused)" if e.is_symlink else
                       "folder too deep (refused)" if e.too_deep else
                       "folder" if e.is_dir else "file",
                       "size": "" if e.is_dir else size(e.size)}
                      for e in entries], hide_index=True, width="stretch")
    else:
        st.text("This overlay is empty.")
    if any(e.is_symlink for e in entries):
        st.warning("This overlay holds a symbolic link left4me did not make; left4me never"
                   " follows one. Delete it below.", icon=":material/warning:")
    if any(e.too_deep for e in entries):
        st.warning(f"This overlay holds folders more than {overlays.MAX_PATH_PARTS} levels"
                   " deep (made before that limit); it cannot be built until you delete them"
                   " below.", icon=":material/warning:")


def _edit(core: Core, actor: Actor, chosen: overlays.Overlay, files: list[str]) -> None:
    target = st.selectbox("File", [NEW, *files], key="edit_file")
    path = st.text_input("New file's path", key="edit_path",
                         placeholder="left4dead2/cfg/server.cfg") if target == NEW else target
    current = ""
    if target != NEW:
        current = frame.attempt(lambda: overlays.read_text(core, actor, chosen.id, target))
    if current is frame.REFUSED:  # a file that is not text is never overwritten from here
        return
    with st.form(f"edit_{chosen.id}_{target}"):
        text = st.text_area("Text", value=current, height=300,
                            key=f"edit_text_{chosen.id}_{target}")
        if st.form_submit_button("Save", type="primary"):
            frame.act(lambda: overlays.write_text(core, actor, chosen.id, path, text),
                      f"Saved {path}.")


def _upload(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    limits = core.settings
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
            frame.act(lambda: _store(core, actor, chosen, uploaded or [], folder or [], into,
                                     extract),
                      f"Uploaded {len(chosen_files)} file(s).")
    st.caption(
        f"One file may be up to {size(limits.overlay_max_file_bytes)} and"
        f" the whole overlay up to {size(limits.overlay_max_total_bytes)}."
        " A zip is extracted at the overlay's top (leave the folder empty); entries leaving"
        " the overlay, links and zip bombs are refused and nothing changes.")


def _store(core: Core, actor: Actor, chosen: overlays.Overlay, uploaded: list, folder: list,
           into: str, extract: bool) -> None:
    """Zips (at the top, when extracting) imported, every other file stored in one go."""
    plain = []
    for item in uploaded:
        if extract and not into and item.name.lower().endswith(".zip"):
            overlays.import_zip(core, actor, chosen.id, item.getvalue())
        else:
            plain.append((item.name, item.getvalue()))
    plain += [(item.name, item.getvalue()) for item in folder]
    if plain:  # all or nothing: one refused file and none is stored
        overlays.upload_files(core, actor, chosen.id, plain, into)


def _arrange(core: Core, actor: Actor, chosen: overlays.Overlay, everything: list[str]
             ) -> None:
    with st.form(f"folder_{chosen.id}", clear_on_submit=True):
        folder = st.text_input("New folder", key="new_folder", placeholder="left4dead2/cfg")
        if st.form_submit_button("Create folder"):
            frame.act(lambda: overlays.make_folder(core, actor, chosen.id, folder),
                      f"Created {folder}.")
    if not everything:
        return
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


def _build(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
    parts.builds_table(core, actor, chosen)
    st.caption("A server stacking this overlay builds it on its host first when that host's"
               " copy is older; a running server takes a new build at its next restart.")
    choices = frame.attempt(lambda: servers.hosts_for(core, actor))
    if choices is not frame.REFUSED and choices:
        host = st.selectbox("Host", choices, key="build_host")
        parts.build_button(core, actor, chosen, host, key="build_overlay")
    parts.build_panel(chosen, key="overlay_build")


def _download_or_delete(core: Core, actor: Actor, chosen: overlays.Overlay) -> None:
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
    parts.delete_button(core, actor, chosen)
