"""An example ccrop-plugins plugin (see ``plugin.py``)."""
