"""The ``ccrop`` command line: demo, study, visualisation, benchmarks and the plugin list.

Unlike the core (``ccrop_plugins``), these programs may use the framework adapters.
"""
