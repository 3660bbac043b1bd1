"""Test helpers for invoicesync and for connector authors (published as a pytest plugin).

    pytest fixtures: ``invoicesync_home``, ``workspace_factory``, ``serve_sandbox``,
                     ``invoicesync_cli``, ``memory_source``, ``memory_target``
    helpers:         ``ScriptedUI``, ``MemorySource``, ``MemoryTarget``, ``loopback_redirect_uri``
    conformance:     ``invoicesync.testing.conformance`` (``SourceConformance``, ``TargetConformance``)
"""

from ._ui import ScriptedUI, loopback_redirect_uri
from .memory import MemorySource, MemoryTarget

__all__ = ["MemorySource", "MemoryTarget", "ScriptedUI", "loopback_redirect_uri"]
