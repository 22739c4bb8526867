"""MiniBatch and Plan: the contract between planning (driver) and execution (workers).

A plan is built from metadata only (file listings, byte offsets, Parquet footers, key folders);
no user code runs and no data is read. Each mini-batch has a stable id (its index plus a hash of
what it covers) and the plan's order is the input order, which is also the output order.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not imported at run time: user-code processes load this module
    from concurrent.futures import Future

# Payload kinds (first element of MiniBatch.payload):
#   ("files", (path, ...))                          file list: run() gets the paths
#   ("range", path, start, end, header_or_None)     delimited / JSON-lines bytes [start, end)
#   ("rowgroups", path, (i, j, ...))                Parquet row groups of one file
#   ("file", path)                                  one whole file (any tabular format)
#   ("group", (payload, ...))                       partition_keys: the parts of one key group
#   ("staged", fragment_path)                       (inside a group) a staged key fragment


@dataclass(frozen=True, kw_only=True)
class Reader:
    """How workers turn a payload into what run() gets."""

    format: str = "files"  # "files" | "delimited" | "parquet" | "json_lines"
    options: Mapping[str, Any] = field(default_factory=dict)
    transforms: tuple[tuple[str, Any], ...] = ()
    partition_format: str | None = None
    root: str | None = None
    # Table files modified after this time (the plan's start, or the newest modification it
    # saw) changed under the plan: their byte ranges and row groups no longer fit.
    unchanged_since: float | None = None

    @property
    def tabular(self) -> bool:
        return self.format != "files"


@dataclass(frozen=True, slots=True)
class MiniBatch:
    """One unit of work: ``run()`` is called once with its items."""

    index: int
    id: str
    payload: tuple
    items: int  # file count, or an estimate of bytes for tabular data
    partition_key_value: Mapping[str, str | None] | None = None  # None: a missing key value

    def describe(self) -> str:
        kind = self.payload[0]
        if kind == "files":
            paths = self.payload[1]
            more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
            return f"{len(paths)} file{'s' if len(paths) != 1 else ''}: {paths[0]}{more}"
        if kind == "range":
            return f"{self.payload[1]} bytes {self.payload[2]}-{self.payload[3]}"
        if kind == "rowgroups":
            return f"{self.payload[1]} row groups {list(self.payload[2])}"
        if kind == "file":
            return f"{self.payload[1]} (whole file)"
        keys = ", ".join(f"{k}={'(missing)' if v is None else v}"
                         for k, v in (self.partition_key_value or {}).items())
        return f"key group {keys} ({len(self.payload[1])} parts)"


def payload_paths(payload: tuple) -> list[str]:
    """Every file path a payload touches (for messages and dead letters)."""
    kind = payload[0]
    if kind == "files":
        return list(payload[1])
    if kind == "group":
        return [p for part in payload[1] for p in payload_paths(part)]
    return [payload[1]]


def minibatch_id(index: int, payload: tuple, key: Mapping[str, str | None] | None = None) -> str:
    """``<index>-<8 hex digits of what it covers>``: stable across runs, so resume can tell a
    mini-batch that covers other files or bytes (not an edit inside a file). File lists (the
    hot path: one per file for small mini-batches) hash their joined paths with CRC-32; other
    payloads their repr with SHA-1.
    """
    if payload[0] == "files" and not key:
        paths = payload[1]
        text = paths[0] if len(paths) == 1 else "\0".join(paths)  # a file alone: no join
        data = text.encode("utf-8", "surrogateescape")  # a name that is not UTF-8: its bytes
        return "%06d-%08x" % (index, zlib.crc32(data))  # noqa: UP031 - 2x an f-string
    digest = hashlib.sha1(repr((payload, sorted((key or {}).items()))).encode()).hexdigest()
    return f"{index:06d}-{digest[:8]}"


class Plan(Sequence[MiniBatch]):
    """An ordered, indexable sequence of mini-batches plus what workers need to load them.

    Mini-batches may be made lazily (``make(i)``) so a plan over a million files holds the
    path list, not a million objects.
    """

    def __init__(
        self,
        *,
        reader: Reader,
        count: int,
        make: Callable[[int], MiniBatch],
        fingerprint: str | Future[str],
        total_items: int,
        unit: str,
        source: str,
        notes: tuple[str, ...] = (),
        work: Callable[[int], tuple] | None = None,
        work_many: Callable[[list[int]], list[tuple]] | None = None,
    ) -> None:
        self.reader = reader
        self._count = count
        self._make = make
        self._fingerprint = fingerprint
        self.total_items = total_items
        self.unit = unit  # "files" or "bytes"
        self.source = source
        self.notes = notes
        self._work = work
        self._work_many = work_many

    @property
    def fingerprint(self) -> str:
        """A hash of the input files (paths, sizes, times) and of how they are split: a resume
        refuses a changed input. May be computed in the background (waited for here)."""
        if not isinstance(self._fingerprint, str):
            self._fingerprint = self._fingerprint.result()
        return self._fingerprint

    @property
    def fingerprint_ready(self) -> bool:
        """Whether ``fingerprint`` returns without waiting (a fresh run over many files
        starts before their hash is done and records it when it is)."""
        return isinstance(self._fingerprint, str) or self._fingerprint.done()

    def work(self, index: int) -> tuple:
        """``(id, payload, partition_key_value)`` of a mini-batch, without building a MiniBatch
        (the driver asks this once per mini-batch; a plan may give a faster way)."""
        if self._work is not None:
            return self._work(index)
        mb = self._make(index)
        return mb.id, mb.payload, mb.partition_key_value

    def work_many(self, indices: list[int]) -> list[tuple]:
        """``work(i)`` for each index, in one call (a chunk of thousands at a time). An id may
        be None, left to whoever needs it: ``minibatch_id(index, payload, key)`` gives it."""
        if self._work_many is not None:
            return self._work_many(indices)
        return [self.work(i) for i in indices]

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> MiniBatch:  # type: ignore[override]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return self._make(index)

    def __iter__(self) -> Iterator[MiniBatch]:
        for i in range(self._count):
            yield self._make(i)

    @classmethod
    def from_list(cls, minibatches: list[MiniBatch], **kwargs: Any) -> Plan:
        return cls(count=len(minibatches), make=minibatches.__getitem__, **kwargs)

    def __repr__(self) -> str:
        return (f"<Plan {self._count} mini-batches over {self.total_items} {self.unit} "
                f"from {self.source}>")

    def summary(self, first: int = 5) -> str:
        """Human-readable count, sizes and the first mini-batches (``daskprs plan``)."""
        lines = [
            f"input:        {self.source}",
            f"reader:       {self.reader.format}",
            f"mini-batches: {self._count}",
            f"total:        {self.total_items} {self.unit}",
            f"fingerprint:  {self.fingerprint[:16]}",
        ]
        if self._count:
            sizes = [self._make(i).items for i in range(min(self._count, 10000))]
            lines.append(
                f"sizes ({self.unit}): min {min(sizes)}, max {max(sizes)}, "
                f"mean {sum(sizes) / len(sizes):.1f}"
                + (" (first 10000)" if self._count > 10000 else "")
            )
        lines.extend(self.notes)
        for i in range(min(first, self._count)):
            mb = self._make(i)
            lines.append(f"  [{mb.id}] {mb.describe()}")
        if self._count > first:
            lines.append(f"  ... {self._count - first} more")
        return "\n".join(lines)

    def to_dask(self) -> Any:
        """The plan as a Dask collection: a bag of file lists or a dataframe of mini-batches.

        Partitions are exactly the mini-batches (built with ``from_map`` / ``from_sequence``,
        so the optimizer cannot fuse them).
        """
        from .inputs import load_payload

        if not self.reader.tabular:
            import dask.bag as db

            return db.from_sequence([list(mb.payload[1]) for mb in self], partition_size=1)
        import dask.dataframe as dd

        reader = self.reader
        return dd.from_map(lambda mb: load_payload(mb.payload, reader, mb.partition_key_value),
                           list(self), enforce_metadata=False)
