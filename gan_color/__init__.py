"""gan-color: GAN-centric image-to-image training suite for automatic image colorization."""

__version__ = "0.1.0"
