"""Read an offline W&B run file (`run-*.wandb`) to check what was logged, with no network.

The file is W&B's record log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
records, each with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) and a
serialised `wandb.proto.wandb_internal_pb2.Record`.
"""

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunks, partial = HEADER, [], b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        payload = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            chunks.append(payload)
        elif kind == 2:
            partial = payload
        elif kind == 3:
            partial += payload
        elif kind == 4:
            chunks.append(partial + payload)
    return [wandb_internal_pb2.Record.FromString(c) for c in chunks]


def history(path: Path) -> list[dict]:
    """The logged rows: {metric: value} per log call."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def run_info(path: Path) -> dict:
    """The run's name, group, job type and config keys as W&B recorded them."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            return {"name": run.display_name, "group": run.run_group, "job_type": run.job_type,
                    "config": {item.key: json.loads(item.value_json) for item in run.config.update}}
    raise AssertionError(f"{path} holds no run record")
