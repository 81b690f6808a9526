"""Encoding shared by the stores that keep a counter's partition as JSON text (SQLite,
Redis, PostgreSQL), memoised because the same few partitions recur on every call."""

from __future__ import annotations

import json

Partition = tuple[tuple[str, str], ...]

_PARTS: dict[Partition, str] = {}
_PARSED: dict[str, Partition] = {}
_MAX = 4096


def partition_json(p: Partition) -> str:
    """``(("run", "a"),)`` → ``'[["run", "a"]]'``."""
    s = _PARTS.get(p)
    if s is None:
        s = json.dumps([list(x) for x in p])
        if len(_PARTS) < _MAX:
            _PARTS[p] = s
    return s


def parse_partition(s: str) -> Partition:
    """The inverse of :func:`partition_json`."""
    p = _PARSED.get(s)
    if p is None:
        p = tuple((str(k), str(v)) for k, v in json.loads(s))
        if len(_PARSED) < _MAX:
            _PARSED[s] = p
    return p
