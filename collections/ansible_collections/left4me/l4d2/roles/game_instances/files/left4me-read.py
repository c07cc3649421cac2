# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""left4me-read: answer one read request (info, rcon, logs) as JSON, as root.

    echo '{"verb": "info"}' | sudo -n /usr/bin/python3 -I /usr/local/libexec/left4me/left4me-read

The request is one JSON object on stdin's first line (see _read_request.py for its form);
the answer is the srcds_info, rcon or server_logs module's result on stdout (a followed log,
`"follow": true`: then a line per batch of new entries, until stdin closes). It takes no
arguments: the sudoers rule the role installs names exactly that command line, so a caller
picks only a verb, an instance and that verb's arguments. Callers name the interpreter (as for
left4me-mount), so neither PATH nor a shebang decides what runs as root, and -I keeps
PYTHON* variables, the user site and the caller's directory out.

The code is the collection's module_utils, copied verbatim by the role into
read-library/ansible_collections/left4me/l4d2/plugins/module_utils beside this file, so it
imports as the modules import it.
"""

import os
import sys

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "read-library")


def main() -> int:
    if sys.argv[1:]:
        sys.stderr.write("left4me-read takes no arguments: the request comes on stdin\n")
        return 2
    sys.path.insert(0, LIBRARY)
    from ansible_collections.left4me.l4d2.plugins.module_utils._read_request import respond
    from ansible_collections.left4me.l4d2.plugins.module_utils._reads import run_argv

    os.chdir("/")
    return respond(sys.stdin.buffer, sys.stdout, run_argv)


if __name__ == "__main__":
    sys.exit(main())
