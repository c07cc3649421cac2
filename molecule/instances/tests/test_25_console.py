"""What a running server writes, on the booted host: its console lines reach the journal
whole even in a burst, and its ban commands can write their files into its own tree."""

from __future__ import annotations

import json

from conftest import PLATFORM, ansible, figure

STATE = "/var/lib/left4me"
# More than journald's default lets a unit log in 30 s on any host (10000, scaled at most 4x
# with free space: the journal's size cap keeps "available" under 4 GiB), less than the
# game unit's LogRateLimitBurst (100000, scaled likewise, never down).
BURST = 41000


def rcon(command: str) -> str:
    result = ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.rcon",
                     "-a", json.dumps({"name": "coop1", "command": command}))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_a_burst_of_console_lines_reaches_the_journal_whole(srv):
    invocation = srv.check_output("systemctl show -p InvocationID --value left4me-server@coop1")
    assert f"sim_burst: printed {BURST} lines" in rcon(f"sim_burst {BURST}")
    count = f"journalctl -q _SYSTEMD_INVOCATION_ID={invocation} -o cat | grep -c '^sim_burst line '"
    for _attempt in range(30):  # journald may still be writing the tail
        seen = int(srv.run(count).stdout.strip() or 0)
        if seen == BURST:
            break
        srv.run("sleep 1")
    figure(f"console burst: {seen} of {BURST} lines in the journal")
    assert seen == BURST
    suppressed = srv.run("journalctl -q -u systemd-journald --since '-5min' -o cat"
                         " | grep 'left4me-server@coop1' | grep -i suppressed").stdout
    assert not suppressed, suppressed


def test_writeid_writes_the_ban_file_into_the_servers_own_tree(srv):
    """srcds writes cfg/banned_user.cfg into its running tree; the config layer's cfg/ is the
    one the game sees there, so it must let the runtime user create files in it."""
    rcon("sim_addplayer Griefer 60 10")
    rcon("banid 0 Griefer")
    output = rcon("writeid")
    assert "Writing cfg/banned_user.cfg." in output and "Couldn't open" not in output, output
    written = srv.file(f"{STATE}/runtime/coop1/writes/upper/left4dead2/cfg/banned_user.cfg")
    assert written.exists and written.user == "left4me"
    assert written.content_string.startswith("banid 0 STEAM_1:")
    layer = f"{STATE}/overlays/.instance-coop1/left4dead2"
    modes = {path: (srv.file(path).user, srv.file(path).group, oct(srv.file(path).mode))
             for path in (layer, f"{layer}/cfg", f"{layer}/cfg/left4me",
                          f"{layer}/cfg/left4me/instance.cfg")}
    assert modes == {
        layer: ("root", "left4me", "0o1770"),
        f"{layer}/cfg": ("root", "left4me", "0o1770"),
        f"{layer}/cfg/left4me": ("root", "left4me", "0o750"),
        f"{layer}/cfg/left4me/instance.cfg": ("root", "left4me", "0o640"),
    }
    # The game may add files beside cfg/left4me/ but never move it away (sticky), and never
    # write in it: checked as the runtime user on the merged tree the game runs in.
    merged = f"{STATE}/runtime/coop1/merged/left4dead2/cfg"
    as_game = "sudo -u left4me sh -c"
    assert srv.run(f"{as_game} 'touch {merged}/left4me/x'").rc != 0
    assert srv.run(f"{as_game} 'mv {merged}/left4me {merged}/moved'").rc != 0
    assert srv.file(f"{merged}/left4me/instance.cfg").exists
