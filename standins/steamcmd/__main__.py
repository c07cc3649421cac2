import sys

from standins.steamcmd.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
