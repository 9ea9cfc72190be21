"""Thin launcher: same as `gan-color colorize ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["colorize", *sys.argv[1:]]))
