"""testinfra verify: report the directives this scenario's hosts cannot enforce."""

import os
import sys

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

pytest_plugins = ["testhosts.pytest_report"]
