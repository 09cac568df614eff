#!/usr/bin/env python3
"""Generates testdata/bad/*.img: malformed composite specs (deterministic; rerun to refresh).

Protobuf is encoded by hand (cdisk_spec.proto field numbers); tests/bad_corpus.rs asserts the
specific error of each file.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"composite_disk\x1d"


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wt, payload):
    key = varint(num << 3 | wt)
    if wt == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def comp(path=b"f", offset=0, rw=0, file_offset=0):
    m = field(1, 2, path) if path is not None else b""
    if offset:
        m += field(2, 0, varint(offset))
    if rw:
        m += field(3, 0, varint(rw))
    if file_offset:
        m += field(4, 0, varint(file_offset))
    return field(2, 2, m)


def disk(comps, length, version=2):
    return MAGIC + field(1, 0, varint(version)) + b"".join(comps) + field(3, 0, varint(length))


bad = {
    "bad_magic": b"composite_disk\x1e" + disk([comp()], 10)[15:],
    "truncated_magic": MAGIC[:10],
    "qcow2_magic": b"QFI\xfb" + b"\0" * 60,
    "protobuf_truncated_varint": MAGIC + b"\x08\xff",
    "protobuf_bad_wire_type": MAGIC + b"\x0f\x00",
    "protobuf_length_past_end": MAGIC + b"\x12\x7f\x0a\x01f",
    "protobuf_path_not_utf8": MAGIC + field(2, 2, field(1, 2, b"\xff\xfe")) + field(3, 0, varint(10)),
    "version_3": disk([comp()], 10, version=3),
    "no_components": disk([], 10),
    "duplicate_offset": disk([comp(b"a", 0), comp(b"b", 0)], 10),
    "component_past_end": disk([comp(b"a", 0), comp(b"b", 10)], 10),
    "zero_length_disk": disk([comp(b"a", 0)], 0),
    "unknown_capability": disk([comp(rw=2)], 10),
    "empty_path": disk([comp(path=None)], 10),
    "gap_at_start": disk([comp(offset=512)], 1024),
}

d = os.path.join(HERE, "bad")
os.makedirs(d, exist_ok=True)
for name, data in bad.items():
    with open(os.path.join(d, name + ".img"), "wb") as f:
        f.write(data)
