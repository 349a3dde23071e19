"""The report of a check: what the other layers use of it.

``rows`` holds the rows, ``model`` :class:`Report` (with its JSON round trip), ``build`` turns an
engine's evaluations into a report and decides the verdicts by the rules of single entries
in ``policy``; ``text``, ``html`` and its ``plots`` draw it; ``diagnose`` names the shape of
a wrong group's gradient, ``layers`` what only several groups show (where in a layered
network the error enters, a gradient returned in another group's place).
"""

from .build import MEDIAN_FACTOR, NOISE_FACTOR, build_report
from .layers import LAYERS
from .model import GUARANTEE_FRACTION, Report
from .rows import DirectionRow, EntryRow, GroupRow, SweepRow
from .text import text_table

__all__ = ["Report", "GroupRow", "EntryRow", "DirectionRow", "SweepRow", "build_report", "GUARANTEE_FRACTION",
           "NOISE_FACTOR", "MEDIAN_FACTOR", "LAYERS", "text_table"]
