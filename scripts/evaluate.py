"""Thin launcher: same as `gan-color evaluate ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
