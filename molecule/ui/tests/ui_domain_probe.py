"""Copied to the UI host and run there as the UI, inside its sandbox (see as_the_ui): open
the UI's core the way the service does and report what a restart must not lose.

  login: boot, sign in as the bootstrap admin, print the session token and, while the
         database is open, the owner and mode of it and its -wal and -shm sidecars
  check: read a token from stdin, print whether it still names a valid session
  server HOST: as the bootstrap admin, make a blueprint and a server on HOST (a queued
         job: this probe starts no worker, so only the running service can run it), wait
         for the job to end and print its state, error, log and the server's port
"""

import json
import os
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.getcwd(), "ui"))  # WorkingDirectory: the project root

from left4me_ui import (  # noqa: E402
    accounts,
    blueprints,
    boot,
    jobs,
    servers,
)

JOB_WAIT_SECONDS = 540
SERVER_NAME = "moleculeui1"
SERVER_HOSTNAME = "left4me molecule ui"


def run_server_job(core: boot.Core, host: str) -> dict:
    config = core.settings
    password = config.generated_admin_password_file.read_text().strip()
    admin = accounts.login(core, config.bootstrap_admin, password, "127.0.0.1").actor
    recipe = blueprints.create(core, admin, "molecule", [],
                               blueprints.BlueprintSettings(hostname=SERVER_HOSTNAME))
    server_id, job_id = servers.create(core, admin, SERVER_NAME, host, recipe.id)
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    job = jobs.get(core, admin, job_id)
    while not job.finished and time.monotonic() < deadline:
        time.sleep(1)
        job = jobs.get(core, admin, job_id)
    log = "\n".join(event.text for event in jobs.events(core, admin, job_id))
    server = servers.get(core, admin, server_id)
    return {"state": job.state, "error": job.error, "tasks": [job.done_tasks,
            job.expected_tasks], "log": log[-3000:], "port": server.port,
            "hostname": SERVER_HOSTNAME}


def main(action: str) -> None:
    core = boot.boot(start_worker=False)
    config = core.settings
    if action == "server":
        print(json.dumps(run_server_job(core, sys.argv[2])))
    elif action == "login":
        password = config.generated_admin_password_file.read_text().strip()
        login = accounts.login(core, config.bootstrap_admin, password, "127.0.0.1")
        with core.db.connect() as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            files = {}
            for suffix in ("", "-wal", "-shm"):
                info = os.stat(f"{config.db_path}{suffix}")
                files[suffix or "db"] = [info.st_uid, stat.S_IMODE(info.st_mode)]
        print(json.dumps({"token": login.token, "files": files}))
    else:
        token = sys.stdin.readline().strip()
        print(json.dumps({"valid": accounts.validate_session(core, token) is not None}))


if __name__ == "__main__":
    main(sys.argv[1])
