"""Regions and partitions from botocore's own data, not from patterns written here: the
partitions of ``botocore/data/endpoints.json``, each with its ``regionRegex`` and the regions it
lists (the image keeps this file, pruned to the pipe's services). A region botocore does not
list yet belongs to the partition whose pattern it matches, as botocore's endpoint resolver
decides it; a region no partition's pattern matches is not a region.

The file is read once, when first asked, from botocore's package directory (found without
importing botocore, which ``assume`` imports later than its settings)."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

# A partition's name as ARNs carry it (aws, aws-cn, aws-us-gov, aws-iso-b, aws-eusc...).
PARTITION_NAME = r"aws(?:-[a-z]+)*"


@dataclass(frozen=True)
class Partition:
    """One of botocore's partitions: its name, its region pattern and the regions it lists."""

    name: str
    pattern: re.Pattern[str]  # regionRegex, ASCII (botocore's \w and \d mean ASCII there)
    regions: frozenset[str]


def endpoints_file() -> Path:
    """botocore's endpoints.json."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("botocore is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "endpoints.json"


@functools.cache
def partitions() -> tuple[Partition, ...]:
    """Every partition botocore knows, in its order."""
    data = json.loads(endpoints_file().read_text(encoding="utf-8"))
    return tuple(
        Partition(p["partition"], re.compile(p["regionRegex"], re.ASCII), frozenset(p.get("regions", {})))
        for p in data["partitions"]
    )


def partition_of(region: str) -> str | None:
    """The partition of ``region``: the one that lists it, else the first whose pattern matches
    it whole; None when none does."""
    known = partitions()
    for partition in known:
        if region in partition.regions:
            return partition.name
    for partition in known:
        if partition.pattern.fullmatch(region):
            return partition.name
    return None


def is_partition(name: str) -> bool:
    return any(partition.name == name for partition in partitions())
