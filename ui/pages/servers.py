"""Servers: yours (everyone's for admins), making a new one, and one server up close:
its live status (systemd's state beside the A2S answer), the console line to join it,
start / stop / restart / delete, its jobs. Admins also see the inventory's own servers,
read-only: site.yml manages them."""

import time
from functools import partial

import frame
import streamlit as st

from left4me_ui import blueprints, health, jobs, observe, servers, status

actor = frame.require_actor()
core = frame.domain()
st.title("Servers")

mine = frame.load(lambda: servers.list_for(core, actor))


# What the poller last saw on the hosts (never "running" for a server that is not).
observed = observe.latest(core, actor)


def state_of(server: servers.Server) -> str:
    """What the UI last asked of the server (its live state is in the status panel)."""
    if server.deleting:
        return "being deleted"
    if not server.deployed:
        return "being created"
    return server.desired_state  # started | stopped: wanted, not seen


def observed_state(server: servers.Server) -> str:
    """What the poller last saw on its host (never "running" for a server that is not)."""
    if server.deleting or not server.deployed:
        return state_of(server)
    seen = observed.get(server.id)
    return seen.reason if seen is not None else "not polled yet"


if mine:
    st.dataframe(
        [{"name": s.name, "host": s.host, "port": s.port, "blueprint": s.blueprint_name,
          "state": observed_state(s), "wanted": state_of(s),
          "restart to apply": "yes" if s.needs_restart else "",
          **({"owner": s.owner_name} if actor.is_admin else {})} for s in mine],
        hide_index=True, width="stretch",
    )
else:
    st.text("You have no servers yet.")

declared = frame.attempt(lambda: servers.declared_for(core, actor))
if declared and declared is not frame.REFUSED:
    with st.expander(f"Servers the inventory runs ({len(declared)}, read-only)",
                     icon=":material/lock:"):
        st.caption("Declared in the inventory (game_instances_list) and managed by "
                   "playbooks/site.yml: the UI shows them but never changes them.")
        st.dataframe([{"host": d.host, "name": d.name,
                       "ports": ", ".join(str(p) for p in d.ports),
                       "connect": d.connect_line, "managed by": "inventory (site.yml)"}
                      for d in declared], hide_index=True, width="stretch")

with st.expander("Create a server", icon=":material/add:", expanded=not mine):
    my_blueprints = [b for b in blueprints.list_for(core, actor) if b.owner_id == actor.user_id]
    hosts = servers.hosts_for(core, actor)
    if not my_blueprints:
        st.text("A server is made from one of your blueprints: create one on Blueprints first.")
    elif not hosts:
        st.text("No host is open to you for new servers; ask an admin.")
    else:
        with st.form("create_server", clear_on_submit=True):
            name = st.text_input("Name", help="Lower case letters, digits and -; e.g. coop2")
            host = st.selectbox("Host", hosts)
            blueprint = st.selectbox("Blueprint", my_blueprints, format_func=lambda b: b.name)
            if st.form_submit_button("Create server", type="primary"):

                def create_and_show() -> None:
                    server_id, _job_id = servers.create(core, actor, name, host, blueprint.id)
                    st.query_params["server"] = str(server_id)

                frame.act(create_and_show)

if not mine:
    st.stop()

server = frame.pick("Server", {s.id: s for s in mine}, "server",
                    lambda s: f"{s.name} on {s.host}")

st.divider()
st.text(f"{server.name} on {server.host}: game port {server.port}, client port "
        f"{server.client_port}, blueprint {server.blueprint_name}, owner {server.owner_name}")
st.caption("Paste this into the game console (~) to join:")
st.code(server.connect_line, language=None)
if server.needs_restart:
    st.warning("Its blueprint changed since it started: restart to apply.",
               icon=":material/restart_alt:")


LIVE_STATUS_SECONDS = 4  # one systemctl over SSH per read: re-read at most this often


def live_status(server_id: int) -> status.LiveStatus:
    """status.live, kept a few seconds in this browser session (per person, per server)."""
    key = f"_live_status_{server_id}"
    cached = st.session_state.get(key)
    if cached is None or time.monotonic() - cached[0] > LIVE_STATUS_SECONDS:
        cached = (time.monotonic(), status.live(core, frame.require_actor(), server_id))
        st.session_state[key] = cached
    return cached[1]


@st.fragment(run_every=5)
def status_panel(server: servers.Server) -> None:
    frame.require_actor()
    if state_of(server) in ("being created", "being deleted"):
        st.text(f"Status: {state_of(server)}")
        return
    live = frame.attempt(lambda: live_status(server.id))
    if live is frame.REFUSED:
        return
    st.text(f"Status: {live.summary} (wanted: {server.desired_state})")
    # systemd's words ("failed (signal)") say what, the poller's reading of the journal and
    # restart counters says why: the same words as the list's state column.
    seen = frame.attempt(lambda: observe.latest(core, actor).get(server.id))
    if seen not in (None, frame.REFUSED) and not seen.running and seen.reason != live.summary:
        st.text(f"Why, as the last poll saw it: {seen.reason}")
    unit = (live.systemd.text if live.systemd is not None
            else f"could not be asked: {live.systemd_error}")
    st.text(f"systemd: {unit}")
    if live.a2s is not None:
        st.text(f"A2S: answering as {live.a2s.server_name}, map {live.a2s.map_name}, "
                f"players {live.a2s.players}/{live.a2s.max_players}")
    else:
        st.text(f"A2S: no answer on {server.host}:{server.port}")
    seen_health = frame.attempt(lambda: health.for_server(core, actor, server.id))
    if seen_health is not frame.REFUSED:
        checked = (f" (checked {frame.when(seen_health.checked_at)} UTC)"
                   if seen_health.checked_at else "")
        st.text(f"Health: {seen_health.line}{checked}")


status_panel(server)

with st.expander("Health check", icon=":material/monitor_heart:"):
    st.text("Down means: A2S silent for"
            f" {core.settings.health_down_after} s while the unit is active, after"
            f" {core.settings.health_start_grace} s of grace from a start and"
            f" {core.settings.health_map_grace} s from a map change run in the console"
            " (srcds does not answer while it loads a map).")
    current = frame.attempt(lambda: health.for_server(core, actor, server.id))
    if current is not frame.REFUSED:
        chosen = st.radio("When it is down", health.ACTIONS, horizontal=True,
                          index=health.ACTIONS.index(current.action),
                          format_func=lambda a: "leave it" if a == "none" else (
                              "restart it (at most"
                              f" {core.settings.health_restarts_per_hour} times an hour)"),
                          key=f"health_action_{server.id}")
        if st.button("Save", key="health_action_save"):
            frame.act(lambda: health.set_action(core, actor, server.id, chosen))
    decided = frame.attempt(lambda: health.decisions(core, actor, server.id))
    if decided not in (frame.REFUSED, []):
        st.dataframe([{"at (UTC)": frame.when(d.at), "health": d.state, "evidence": d.text,
                       "done": d.action} for d in decided], hide_index=True, width="stretch")

left, middle, right, _ = st.columns([1, 1, 1, 3])
busy = server.deleting
action = None
if left.button("Start", icon=":material/play_arrow:", disabled=busy):
    action = servers.start
if middle.button("Stop", icon=":material/stop:", disabled=busy):
    action = servers.stop
if right.button("Restart", icon=":material/restart_alt:", disabled=busy):
    action = servers.restart
if action is not None:
    frame.act(partial(action, core, actor, server.id))

with st.expander("Delete this server", icon=":material/delete:"):
    st.text(f"This removes {server.name} from {server.host}. Type its name to confirm.")
    confirm = st.text_input("Server name", key=f"confirm_delete_{server.id}")
    if st.button("Delete server", type="primary", disabled=busy, key="delete_server"):
        frame.act(lambda: servers.delete(core, actor, server.id, confirm))

history = jobs.history(core, actor, server_id=server.id, limit=50)
if history:
    st.subheader("Latest job")
    frame.job_panel(history[0].id, key="server")
    with st.expander("Job history of this server"):
        st.dataframe(frame.job_rows(history), hide_index=True, width="stretch")
