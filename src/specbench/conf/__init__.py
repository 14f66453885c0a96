"""The Hydra configs, shipped as package data (``pkg://specbench.conf``)."""
