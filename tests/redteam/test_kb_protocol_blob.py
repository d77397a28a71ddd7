"""The wire format itself: string leaves travel, hostile frames are ProtocolErrors, and a
write to a peer that stopped reading ends at its deadline (issue 16).

Before: a task whose get_init_inputs() holds a string ("tanh") was reported as a broken
task, because a blob refused str leaves; a deeply nested frame header raised RecursionError;
`send` had no deadline and blocked for ever once the pipe was full.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import time

import pytest

from kopt.sandboxes import protocol
from tests.redteam._kb import run, world_readable, write

torch = pytest.importorskip("torch")


def test_plain_values_and_strings_round_trip_in_a_blob():
    obj = ["tanh", {"mode": "mean", "eps": 1e-5, "on": True, "k": 3, "none": None}, torch.arange(4.0)]
    back = protocol.loads_tensors(protocol.dumps_tensors(obj))
    assert back[:2] == obj[:2] and torch.equal(back[2], obj[2])


def test_a_string_over_the_limit_is_refused_both_ways():
    with pytest.raises(TypeError, match="characters"):
        protocol.encode(["x" * (protocol.MAX_STR + 1)], torch)
    tree = json.dumps({"t": "val", "v": "x" * (protocol.MAX_STR + 1)}).encode()
    blob = struct.pack("<I", len(tree)) + tree
    with pytest.raises(protocol.ProtocolError):
        protocol.check_blob(blob)


@pytest.mark.parametrize("value", [[1, 2], {"a": "x"}])
def test_a_value_leaf_that_is_a_container_is_refused(value):
    tree = json.dumps({"t": "val", "v": value}).encode()
    with pytest.raises(protocol.ProtocolError, match="malformed value"):
        protocol.check_blob(struct.pack("<I", len(tree)) + tree)


def test_a_deeply_nested_frame_header_is_a_protocol_error():
    body = b"[" * 200_000 + b"]" * 200_000
    r, w = os.pipe()
    # the frame is larger than a pipe's buffer: written from a thread while this one reads
    writer = threading.Thread(target=protocol._write_all,
                              args=(w, struct.pack("<II", len(body), 0) + body))
    writer.start()
    try:
        with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
            protocol.recv(r, deadline=time.monotonic() + 30)
    finally:
        writer.join()
        os.close(r)
        os.close(w)


def test_a_write_to_a_peer_that_stopped_reading_ends_at_the_deadline():
    r, w = os.pipe()
    try:
        t0 = time.monotonic()
        with pytest.raises(protocol.Late):
            protocol.send(w, {"cmd": "call"}, [bytes(4 << 20)], deadline=time.monotonic() + 0.5)
        assert time.monotonic() - t0 < 5
        assert os.get_blocking(w)  # left as it was found
    finally:
        os.close(r)
        os.close(w)


STR_TASK = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return torch.tanh(x) if self.act == "tanh" else torch.relu(x)

def get_inputs():
    return [torch.randn(64, 64)]

def get_init_inputs():
    return ["tanh"]
'''


def test_a_task_with_a_string_init_input_is_evaluated(tmp_path):
    shared = world_readable()
    task = write(shared, "str_init.py", STR_TASK)
    task.chmod(0o644)
    try:
        res = run(task, write(tmp_path, "copy.py", STR_TASK.replace("Model", "ModelNew")), rounds=3, trials=2)
    finally:
        task.unlink()
        shared.rmdir()
    assert res["correct"] and res["verdict"] in ("faster", "same", "slower"), (res["verdict"], res.get("reason"))
