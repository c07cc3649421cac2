import sys

from standins.srcds.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
