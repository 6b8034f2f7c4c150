"""Read back a wandb offline run's `.wandb` transaction log (wandb 0.31 ships no reader for it).

The format, as wandb-core writes it (core/internal/stream/store.go, core/pkg/leveldb/record.go):

    header := ident ":W&B" | magic uint16 0xBEE1 | version uint8 0      (little-endian, 7 bytes)
    then LevelDB log blocks of 32 KiB (the header counts towards the first block):
    chunk  := crc uint32 | length uint16 | type uint8 | payload[length]
              type: FULL=1, FIRST=2, MIDDLE=3, LAST=4; a record too long for its block is cut into
              FIRST, MIDDLE..., LAST chunks; a block with fewer than 7 bytes left is zero-padded.

Unlike LevelDB, the checksum is zlib's CRC-32 (IEEE), not CRC-32C, over the type byte and the
payload (wandb-core opens the store with `leveldb.CRCAlgoIEEE`). Each record's payload is one
serialized `wandb.proto.wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

FILE_HEADER = struct.Struct("<4sHB")
IDENT, MAGIC, VERSION = b":W&B", 0xBEE1, 0
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptLog(ValueError):
    pass


def read_payloads(path: str | Path) -> Iterator[bytes]:
    """The raw payload of every record, in the order written; raises CorruptLog on any damage."""
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size or FILE_HEADER.unpack_from(data) != (IDENT, MAGIC, VERSION):
        raise CorruptLog(f"{path}: not a wandb transaction log (header {data[:FILE_HEADER.size]!r})")
    pos, parts = FILE_HEADER.size, None
    while pos < len(data):
        room = BLOCK_SIZE - pos % BLOCK_SIZE
        if room < CHUNK_HEADER.size:
            if data[pos : pos + room].strip(b"\0"):
                raise CorruptLog(f"{path}: non-zero block trailer at byte {pos}")
            pos += room
            continue
        if pos + CHUNK_HEADER.size > len(data):
            raise CorruptLog(f"{path}: truncated chunk header at byte {pos}")
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        end = start + length
        if end > pos + room or end > len(data):
            raise CorruptLog(f"{path}: chunk at byte {pos} overruns its block or the file")
        payload = data[start:end]
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            raise CorruptLog(f"{path}: checksum mismatch in chunk at byte {pos}")
        pos = end
        if kind in (FULL, FIRST) and parts is not None:
            raise CorruptLog(f"{path}: record at byte {pos} starts before the previous one ended")
        if kind in (MIDDLE, LAST) and parts is None:
            raise CorruptLog(f"{path}: continuation chunk at byte {pos} without a first chunk")
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            parts = [payload]
        elif kind == MIDDLE:
            parts.append(payload)
        elif kind == LAST:
            yield b"".join(parts + [payload])
            parts = None
        else:
            raise CorruptLog(f"{path}: unknown chunk type {kind} at byte {pos}")
    if parts is not None:
        raise CorruptLog(f"{path}: file ends inside a record")


def read_records(path: str | Path) -> list[pb.Record]:
    records = []
    for payload in read_payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def _apply(target: dict, item, value) -> None:
    """Set `value` at item.key, or at the path item.nested_key (wandb's nested updates)."""
    path = list(item.nested_key) or [item.key]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _remove(target: dict, item) -> None:
    path = list(item.nested_key) or [item.key]
    for key in path[:-1]:
        target = target.get(key, {})
    target.pop(path[-1], None)


def _fold(records) -> dict:
    """Config or summary records (each: `update` items, then `remove` items) applied in order."""
    folded: dict = {}
    for record in records:
        for item in record.update:
            _apply(folded, item, json.loads(item.value_json))
        for item in record.remove:
            _remove(folded, item)
    return folded


def _history_value(item: pb.HistoryItem):
    kind = item.WhichOneof("value")
    if kind is None:
        return json.loads(item.value_json)
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(item.json)
    return getattr(item, kind)


@dataclass
class OfflineRun:
    """One offline run as its transaction log records it."""

    records: list[pb.Record]

    @classmethod
    def read(cls, path: str | Path) -> OfflineRun:
        return cls(read_records(path))

    def of_type(self, kind: str) -> list:
        return [getattr(r, kind) for r in self.records if r.WhichOneof("record_type") == kind]

    @property
    def run(self) -> pb.RunRecord:
        """The run's identity (project, run_group, display_name, tags); wandb writes it once at init."""
        (run,) = self.of_type("run")
        return run

    @property
    def config(self) -> dict:
        """The config as it stands at the end: the run record's, then every config update in order."""
        return _fold([self.run.config, *self.of_type("config")])

    @property
    def summary(self) -> dict:
        """The final summary: the run record's, then every summary update in order (wandb-core writes
        one after each history row, carrying that row's values, as well as `run.summary.update`'s)."""
        return _fold([self.run.summary, *self.of_type("summary")])

    @property
    def history(self) -> list[dict]:
        """One dict per `run.log` step."""
        rows = []
        for record in self.of_type("history"):
            row: dict = {}
            for item in record.item:
                _apply(row, item, _history_value(item))
            rows.append(row)
        return rows

    @property
    def exit_code(self) -> int | None:
        """The exit code `wandb.finish` recorded, or None when the run was never finished."""
        exits = self.of_type("exit")
        return exits[-1].exit_code if exits else None
