"""Train a colorization GAN or baseline: `accelerate launch train_gan.py --config CONFIG.yaml [key=value ...]`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
