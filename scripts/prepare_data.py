"""Thin launcher: same as `gan-color prepare-data ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]]))
