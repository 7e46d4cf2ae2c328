"""advisor: what to bid, whether to reserve, and where to fall back for GPU compute.

Data flows one way: store -> forecast -> plan/replay -> optimize -> report; cli.py and app.py are thin shells.
"""

__version__ = "0.1.0"
