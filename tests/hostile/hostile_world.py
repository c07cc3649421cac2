"""The hostile-tenant world: one host converged with site.yml, two ordinary UI users on it.

Alice runs one server (`alice`) from a blueprint stacking her own files overlay (a secret
cfg) and script overlay (a secret build). Mallory runs `mallory` from her script overlay
`mallory-kit`, whose `srcds_run` is her own: it starts the real (stand-in) server and then
runs whatever Python its mailbox receives, as the server's own code. That is what any user
can do (a script overlay may ship any file, a replacement `srcds_run` included), and the
tests use it to attack from inside Mallory's running server. Her second server,
`mallory-link`, also stacks `mallory-link`, a script overlay that ships
`left4dead2/cfg/server.cfg` as whatever the test asks (a link to Alice's instance.cfg,
to /dev/zero, a FIFO).

Everything goes through the UI's domain layer (left4me_ui) and its real jobs (ansible-runner
running playbooks/*.yml against the host), as the UI's worker runs them.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from left4me_ui import blueprints, jobs, live, observe, servers, status
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from testhosts import host

STATE = "/var/lib/left4me"
ALICE_HOSTNAME = "Alice hostile-suite server"
ALICE_SECRET_CFG = "left4dead2/cfg/alice-secret.cfg"
ALICE_SECRET = "alice-secret-token-7d1f"
ALICE_BUILD_SECRET = "alice-build-secret-3a9c"
MAILBOX = "left4me-kit-mailbox"

# Mallory's server code. It runs from the merged tree of her instance (srcds_run cds there),
# starts the real server as its child, and runs each req-N.py dropped into the mailbox as a
# Python program (in her server's sandbox, as her server), answering res-N.json.
AGENT = r'''
import json, os, subprocess, sys, time
root = os.getcwd()
box = os.path.join(root, "left4me-kit-mailbox")
os.makedirs(box, exist_ok=True)
for stale in os.listdir(box):  # the upper dir keeps the last run's mailbox
    os.unlink(os.path.join(box, stale))
env = dict(os.environ, PYTHONPATH=os.path.join(root, "bin"))
server = subprocess.Popen([sys.executable, "-m", "standins.srcds", *sys.argv[1:]], env=env)
with open(os.path.join(box, "server.pid.tmp"), "w") as f:
    f.write(str(server.pid))
os.replace(os.path.join(box, "server.pid.tmp"), os.path.join(box, "server.pid"))
print(f"mallory's agent: real server is pid {server.pid}", flush=True)
while True:
    if server.poll() is not None and not os.path.exists(os.path.join(box, "server-stopped")):
        sys.exit(server.returncode or 1)
    for name in sorted(os.listdir(box)):
        if not (name.startswith("req-") and name.endswith(".py")):
            continue
        path = os.path.join(box, name)
        try:
            run = subprocess.run([sys.executable, path], capture_output=True, text=True,
                                 timeout=300, cwd=root)
            answer = {"rc": run.returncode, "stdout": run.stdout[-20000:],
                      "stderr": run.stderr[-20000:]}
        except subprocess.TimeoutExpired:
            answer = {"rc": None, "stdout": "", "stderr": "the attack ran over 300 s"}
        os.unlink(path)
        result = os.path.join(box, "res-" + name[4:-3] + ".json")
        with open(result + ".tmp", "w") as f:
            json.dump(answer, f)
        os.replace(result + ".tmp", result)
    time.sleep(0.2)
'''

KIT_SCRIPT = f"""#!/bin/sh
# Mallory's kit: her own srcds_run (runs her agent, which runs the real server).
set -eu
mkdir -p /overlay/left4me-kit
cat > /overlay/left4me-kit/agent.py <<'PY'
{AGENT.strip()}
PY
cat > /overlay/srcds_run <<'SH'
#!/bin/sh
cd "$(dirname "$0")" || exit 1
exec python3 -u left4me-kit/agent.py "$@"
SH
chmod 0755 /overlay/srcds_run
echo "kit ready"
"""


def link_script(how: str) -> str:
    """A script overlay that ships left4dead2/cfg/server.cfg made by `how` (a shell line run
    with $CFG naming the file)."""
    return f"""#!/bin/sh
set -eu
mkdir -p /overlay/left4dead2/cfg
CFG=/overlay/left4dead2/cfg/server.cfg
rm -f "$CFG"
{how}
ls -l "$CFG"
"""


def alice_instance_cfg(name: str = "alice") -> str:
    return f"{STATE}/overlays/.instance-{name}/left4dead2/cfg/left4me/instance.cfg"


ALICE_SCRIPT = f"""#!/bin/sh
set -eu
mkdir -p /overlay/left4dead2/cfg
echo 'sv_tags {ALICE_BUILD_SECRET}' > /overlay/left4dead2/cfg/alice-build.cfg
echo "alice's build: {ALICE_BUILD_SECRET}"
"""


@dataclass
class World:
    host: host.TestHost
    core: Core
    alice: Actor
    mallory: Actor
    admin: Actor  # reads every job's log when one fails
    servers: dict[str, int] = field(default_factory=dict)  # instance name -> server id
    requests: int = 0

    # --- jobs -------------------------------------------------------------------------------

    def run_jobs(self, expect: str = jobs.SUCCEEDED) -> list[jobs.Job]:
        """Run every queued job in order, as the UI's worker does; each must end `expect`."""
        done = []
        while (job := jobs.run_next(self.core)) is not None:
            done.append(job)
            if expect and job.state != expect:
                log = "\n".join(e.text for e in jobs.events(self.core, self.admin, job.id))
                raise AssertionError(f"job {job.id} ({job.kind} {job.target}) ended"
                                     f" {job.state}: {job.error}\n{log[-3000:]}")
        return done

    def server(self, name: str) -> servers.Server:
        owner = self.alice if name.startswith("alice") else self.mallory
        return servers.get(self.core, owner, self.servers[name])

    def exists(self, path: str) -> bool:
        return self.host.nsenter("sh", "-c", f"test -e {path} && echo yes",
                                 check=False).strip() == "yes"

    def unit_show(self, name: str, prop: str) -> str:
        return self.host.nsenter("systemctl", "show", "-P", prop,
                                 f"left4me-server@{name}.service").strip()

    # --- Alice must not notice ----------------------------------------------------------------

    def assert_alice_unharmed(self, attack: str) -> None:
        """Alice's server answers A2S with its name, and her console works (RCON on her host
        through the domain's console path)."""
        server_id = self.servers["alice"]
        answer = None
        for _ in range(10):  # a server restarting after an attack gets a few seconds
            answer = status.a2s_info(self.core, self.alice, server_id, timeout=2)
            if answer is not None:
                break
            time.sleep(1)
        assert answer is not None and answer.server_name == ALICE_HOSTNAME, (
            f"after {attack}: Alice's server no longer answers A2S with its name ({answer})")
        try:
            said = live.run_console(self.core, self.alice, server_id, "hostname", deadline=15)
        except live.ConsoleError as error:
            raise AssertionError(f"after {attack}: Alice's console fails: {error}") from None
        assert ALICE_HOSTNAME in said.output, (
            f"after {attack}: Alice's console answers something else: {said.output!r}")

    # --- Mallory's server code ----------------------------------------------------------------

    def mallory_runs(self, program: str, server: str = "mallory", timeout: float = 200,
                     **values: object) -> dict:
        """Run `program` (Python; `values` are set as its global variables first) as code of
        Mallory's running server `server`; its rc, stdout and stderr. The program's last
        stdout line, if JSON, is parsed into "json"."""
        program = "".join(f"{k} = {v!r}\n" for k, v in values.items()) + textwrap.dedent(
            program)
        self.requests += 1
        box = f"{STATE}/runtime/{server}/merged/{MAILBOX}"
        number = self.requests
        self.put_file(f"{box}/.req-{number}.tmp", program)
        self.host.nsenter("mv", f"{box}/.req-{number}.tmp", f"{box}/req-{number}.py")
        deadline = time.monotonic() + timeout
        result = f"{box}/res-{number}.json"
        while time.monotonic() < deadline:
            text = self.host.nsenter("sh", "-c", f"cat {result} 2>/dev/null || true")
            if text:
                answer = json.loads(text)
                lines = answer["stdout"].strip().splitlines()
                try:
                    answer["json"] = json.loads(lines[-1]) if lines else None
                except ValueError:
                    answer["json"] = None
                return answer
            time.sleep(0.3)
        raise AssertionError(f"Mallory's server code did not answer request {number} in"
                             f" {timeout} s (is her agent running? {box})")

    def put_file(self, path: str, text: str) -> None:
        subprocess.run(["nsenter", "-t", str(self.host.init_pid()), "-m", "-u", "-i", "-n",
                        "-p", "sh", "-c", 'cat > "$0"', path], input=text, text=True,
                       check=True, timeout=30)

    def restart(self, name: str) -> None:
        """Restart Mallory's server `name` through the UI (a job), then wait for her agent."""
        self.host.nsenter("rm", "-f", f"{STATE}/runtime/{name}/merged/{MAILBOX}/server.pid",
                          check=False)
        servers.restart(self.core, self.mallory, self.servers[name])
        self.run_jobs()
        self.wait_for_agent(name)

    def wait_for_agent(self, server: str = "mallory", timeout: float = 60) -> None:
        pid_file = f"{STATE}/runtime/{server}/merged/{MAILBOX}/server.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.host.nsenter("sh", "-c", f"test -s {pid_file} && echo yes",
                                 check=False).strip() == "yes":
                return
            time.sleep(0.5)
        journal = self.host.nsenter("journalctl", "-n", "30", "-u",
                                    f"left4me-server@{server}", check=False)
        raise AssertionError(f"Mallory's agent in {server} did not start within {timeout} s:"
                             f"\n{journal}")

    def poll(self) -> list[observe.Change]:
        return observe.poll_host(self.core, self.host.name)


def make_blueprint(world: World, actor: Actor, name: str, overlays: list[str],
                   hostname: str) -> int:
    return blueprints.create(world.core, actor, name, overlays,
                             blueprints.BlueprintSettings(hostname=hostname, maxplayers=4)).id


def create_server(world: World, actor: Actor, name: str, blueprint_id: int) -> int:
    server_id, _job = servers.create(world.core, actor, name, world.host.name, blueprint_id)
    world.run_jobs()
    world.servers[name] = server_id
    return server_id


@dataclass
class Timed:
    seconds: float
    finished: bool
    value: object = None
    error: BaseException | None = None


def within(seconds: float, call: Callable[[], object], on_overrun: Callable[[], None]
           ) -> Timed:
    """Run `call` in a thread; give up waiting after `seconds` (then `on_overrun()` ends what
    it left running on the host, so the thread ends too)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 (reported to the test)
            box["error"] = error

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    finished = not thread.is_alive()
    took = time.monotonic() - started
    if not finished:
        on_overrun()
        thread.join(120)
    return Timed(took, finished, box.get("value"), box.get("error"))  # type: ignore[arg-type]
