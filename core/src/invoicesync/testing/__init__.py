"""Test helpers for invoicesync and for connector authors (published as a pytest plugin).

    pytest fixtures: ``invoicesync_home``, ``workspace_factory``, ``serve_sandbox``, ``cli``
    helpers:         ``ScriptedUI``, ``memory_source``, ``memory_target``
"""

from ._ui import ScriptedUI
from .memory import MemorySource, MemoryTarget

__all__ = ["MemorySource", "MemoryTarget", "ScriptedUI"]
