"""``ccrop demo``: the command, its sizes, the Lightly and mmengine training runs and the report."""
