"""Shared test settings: only built-in plugins (installed ones must not change results), small thread pools."""

import os

os.environ.setdefault("CCROP_PLUGINS_NO_AUTOLOAD", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
