"""ansible-test's pip bootstrap, made from what Python ships: ensurepip, then pip install.

ansible-test --venv downloads get-pip.py from a host these machines cannot reach, and says
to save a bootstrap script to its cache instead; scripts/test puts this one there.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
