"""``ccrop bench ...``: one module per benchmark (speed, pairs, lightly, mm)."""
