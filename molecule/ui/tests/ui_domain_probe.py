"""Copied to the UI host and run there as the UI, inside its sandbox (see as_the_ui): open
the UI's core the way the service does and report what a restart must not lose.

  login: boot, sign in as the bootstrap admin, print the session token and, while the
         database is open, the owner and mode of it and its -wal and -shm sidecars
  check: read a token from stdin, print whether it still names a valid session
"""

import json
import os
import stat
import sys

sys.path.insert(0, os.path.join(os.getcwd(), "ui"))  # WorkingDirectory: the project root

from left4me_ui import accounts  # noqa: E402
from left4me_ui import core as ui_core  # noqa: E402


def main(action: str) -> None:
    core = ui_core.boot(start_worker=False)
    config = core.settings
    if action == "login":
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
