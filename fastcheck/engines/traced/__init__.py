"""The traced engine: any numpy cost, traced once, perturbations evaluated incrementally and exactly."""

from .engine import TracedEngine, traced_engine
from .graph import NotTraceable

__all__ = ["traced_engine", "TracedEngine", "NotTraceable"]
