"""``ccrop study``: the command (pre-train, probe, score over seeds) and its tables and plots."""
