"""Activity of one server, from the poller (left4me_ui.observe): who is playing now, recent
sessions (with Steam profile names and avatars when the operator configured a Web API key),
players / memory / CPU over the last day, and what changed outside the UI."""

from datetime import UTC, datetime

import frame
import streamlit as st

from left4me_ui import observe, profiles, servers

actor = frame.require_actor()
core = frame.domain()
st.title("Activity")

mine = [s for s in frame.load(lambda: servers.list_for(core, actor)) if s.deployed]
if not mine:
    st.text("No server of yours has run yet.")
    st.stop()
chosen_id = frame.pick("Server", {s.id: s for s in mine}, "server",
                       lambda s: f"{s.name} on {s.host}", key="activity_server").id
st.caption(f"Polled every {core.settings.poll_seconds} s; the page shows the last poll.")

now = frame.attempt(lambda: observe.latest(core, actor)).get(chosen_id)
if now is None:
    st.text("State: not polled recently (the poller has not reached its host yet).")
else:
    players = f", players {now.players}/{now.max_players}" if now.players is not None else ""
    st.text(f"State: {now.reason}{players} (at {frame.when(now.at)} UTC)")

sessions = frame.attempt(lambda: observe.sessions(core, actor, chosen_id))
# Steam names and avatars come from the poller's cache (left4me_ui.profiles), never from a
# call per page view; without a key the names are the ones `status` shows.
with_steam = profiles.configured(core.settings)
steam = profiles.for_steam_ids(core, [p.steam_id for p in sessions]) if with_steam else {}
AVATAR = {"avatar": st.column_config.ImageColumn("avatar", width="small")}


def who(session: observe.PlayerSession) -> dict:
    if not with_steam:
        return {"name": session.name}
    profile = steam.get(session.steam_id)
    return {"avatar": (profile.avatar_url or None) if profile else None, "name": session.name,
            "Steam name": profile.name if profile else None}


on_now = [p for p in sessions if p.left_at is None]
st.subheader("Playing now")
if on_now:
    st.dataframe([{**who(p), "ping (ms)": p.ping_last, "connected": p.connected}
                  for p in on_now], hide_index=True, width="stretch", column_config=AVATAR)
else:
    st.text("Nobody (bots are not counted).")
earlier = [p for p in sessions if p.left_at is not None]
if earlier:
    st.subheader("Recent sessions")
    st.dataframe([{**who(p), "joined (UTC)": frame.when(p.joined_at),
                   "left (UTC)": frame.when(p.left_at), "min ping": p.ping_min,
                   "max ping": p.ping_max} for p in earlier], hide_index=True, width="stretch",
                 column_config=AVATAR)
if sessions and (steam_note := profiles.note(core, actor)):
    st.caption(steam_note)

seen = frame.attempt(lambda: observe.history(core, actor, chosen_id))
if seen:
    st.subheader("The last day")
    moments = [datetime.fromtimestamp(o.at, UTC) for o in seen]
    st.caption("Players")
    st.line_chart({"time": moments, "players": [o.players or 0 for o in seen]}, x="time",
                  y="players", height=200)
    accounted = [o for o in seen if o.memory_bytes is not None]
    if accounted:
        st.caption("Memory (MiB, systemd's MemoryCurrent)")
        st.line_chart({"time": [datetime.fromtimestamp(o.at, UTC) for o in accounted],
                       "MiB": [o.memory_bytes / 2**20 for o in accounted]},
                      x="time", y="MiB", height=200)
    cpu = observe.cpu_percent(seen)
    if cpu:
        st.caption("CPU (% of one core, from systemd's CPUUsageNSec)")
        st.line_chart({"time": [datetime.fromtimestamp(t, UTC) for t, _ in cpu],
                       "CPU %": [share for _, share in cpu]}, x="time", y="CPU %", height=200)
    if not accounted and not cpu:
        st.text("This host does not account memory or CPU per service (no cgroup controllers).")

changes = frame.attempt(lambda: observe.changes(core, actor, chosen_id))
if changes:
    st.subheader("What changed")
    st.dataframe([{"when (UTC)": frame.when(c.at), "from": c.before, "to": c.after,
                   "why": c.reason} for c in changes], hide_index=True, width="stretch")
