"""The black-box engine: any user cost, on joblib workers, a Dask cluster, or as stacks.

``dispatch`` schedules the chunks, ``workers`` evaluates them (module level, picklable),
``backends`` sends them to joblib or Dask, ``faults`` names what goes wrong.
"""

from .dispatch import blackbox_directions, blackbox_engine

__all__ = ["blackbox_engine", "blackbox_directions"]
