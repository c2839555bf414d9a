"""partnerkit: contract testing and partner simulation for OrderOps.

Installed, everything lives under this one namespace — ``partnerkit.client``,
``partnerkit.simulator``, ``partnerkit.contracts`` — so partnerkit never
collides with a project's own ``client`` or ``contracts`` package. In a source
checkout the three packages stay at the repository root (the layout DESIGN.md
fixes); ``partnerkit/`` links to them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("partnerkit")
except PackageNotFoundError:  # pragma: no cover - a bare checkout without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]
