"""Generative image models (VAE, autoencoder, DCGAN) behind one interface, with one training harness."""

__version__ = "0.1.0"
