"""Market keys and what GPU an instance type carries.

A market key is `provider:location:instance_type:kind` (DESIGN.md vocabulary), e.g.
`aws:us-east-1e:g2.2xlarge:spot`. Kinds: `spot` (a moving price you may set a limit on), `on_demand`
(list price) and `reserved` (the unit-price series of Mithril reservations, not biddable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("spot", "on_demand", "reserved")

# Instance types whose GPU the source files do not name (AWS and GCP); per-instance GPU count.
_KNOWN_TYPES: dict[str, tuple[str, int]] = {
    "p5.48xlarge": ("H100", 8),
    "p5e.48xlarge": ("H200", 8),
    "p5en.48xlarge": ("H200", 8),
    "p6-b200.48xlarge": ("B200", 8),
    "p4d.24xlarge": ("A100", 8),
    "p4de.24xlarge": ("A100-80GB", 8),
    "p3.2xlarge": ("V100", 1),
    "p3.8xlarge": ("V100", 4),
    "p3.16xlarge": ("V100", 8),
    "p2.xlarge": ("K80", 1),
    "p2.8xlarge": ("K80", 8),
    "p2.16xlarge": ("K80", 16),
    "g2.2xlarge": ("K520", 1),
    "g2.8xlarge": ("K520", 4),
    "a3-highgpu-8g": ("H100", 8),
    "a3-megagpu-8g": ("H100", 8),
    "a3-highgpu-1g": ("H100", 1),
    "a2-highgpu-1g": ("A100", 1),
    "a2-highgpu-8g": ("A100", 8),
    "a2-ultragpu-8g": ("A100-80GB", 8),
    "a4-highgpu-8g": ("B200", 8),
}

# Mithril-style names: `h100-80gb.sxm.8x`, `b200.8x`, `8xa100`.
_MITHRIL_NAME = re.compile(r"^(?:(\d+)x)?([a-z]+\d+[a-z]*)(-80gb)?(?:\.[a-z0-9]+)*?(?:\.(\d+)x)?$")


@dataclass(frozen=True)
class MarketKey:
    """The identity of one market; `str()` gives the canonical `provider:location:type:kind` form."""

    provider: str
    location: str
    instance_type: str
    kind: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.location}:{self.instance_type}:{self.kind}"

    @classmethod
    def parse(cls, text: str) -> MarketKey:
        """Parse `provider:location:instance_type:kind`; raises ValueError naming the expected form."""
        parts = text.split(":")
        if len(parts) != 4 or not all(parts) or parts[3] not in KINDS:
            raise ValueError(
                f"market {text!r} is not of the form provider:location:instance_type:kind "
                f"(kind one of {', '.join(KINDS)}), e.g. aws:us-east-1e:g2.2xlarge:spot"
            )
        return cls(*parts)


def infer_gpu(instance_type: str) -> tuple[str | None, int | None]:
    """Best-effort (gpu, gpus_per_instance) for an instance type name; (None, None) when unknown."""
    if instance_type in _KNOWN_TYPES:
        return _KNOWN_TYPES[instance_type]
    match = _MITHRIL_NAME.match(instance_type.lower())
    if not match:
        return None, None
    lead, gpu, mem80, trail = match.groups()
    if not gpu.startswith(("h1", "h2", "a1", "b2", "b1", "l4", "gb")):
        return None, None
    count = int(lead or trail or 1)
    name = gpu.upper() + ("-80GB" if mem80 and gpu.startswith("a") else "")
    return name, count
