"""``fastcheck bench``: fastcheck's engines and modes timed against peer gradient checkers.

``methods`` (what is timed), ``peers`` (the peers' checkers), ``measure`` (timing, memory,
extrapolation, isolation, scaling), ``output`` (table, plot, environment), ``command``
(the subcommand); ``python -m fastcheck.apps.bench`` runs it on its own.
"""
