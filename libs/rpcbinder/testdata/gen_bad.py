#!/usr/bin/env python3
"""Generates the bad-input corpus under testdata/bad/ (deterministic; rerun to refresh).

server/*.bin  client -> server byte streams fed to fuzzing::serve_bytes
client/*.bin  first byte = offered version, then server -> client bytes for fuzzing::client_bytes
parcel/*.bin  first byte = reader selector, then parcel bytes for fuzzing::parse_parcel
Each file's expected error is asserted in tests/bad_corpus.rs.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DESC = "android.system.virtualmachineservice.IVirtualMachineService"


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def s16(s):
    units = s.encode("utf-16-le")
    b = u32(len(units) // 2) + units + b"\0\0"
    return b + b"\0" * (-len(b) % 4)


def conn(version=1, options=0, fd=0, sid=0):
    return u32(version) + bytes([options, fd]) + b"\0" * 8 + struct.pack("<H", sid)


CCI = b"cci\0" + b"\0" * 4


def cmd(c, body):
    return u32(c) + u32(len(body)) + b"\0" * 8 + body


def txn(addr, code, parcel=b"", flags=0, async_no=0, pds=None, table=b""):
    pds = len(parcel) if pds is None else pds
    body = struct.pack("<QIIQI", addr, code, flags, async_no, pds) + b"\0" * 12 + parcel + table
    return cmd(0, body)


def dec_strong(addr, amount):
    return cmd(2, struct.pack("<QII", addr, amount, 0))


def reply(parcel=b"", status=0):
    return cmd(1, struct.pack("<iI", status, len(parcel)) + b"\0" * 12 + parcel)


HELLO = conn() + CCI
ROOT = HELLO + txn(0, 0)

server = {
    "truncated_header": conn()[:10],
    "incoming_new_session": conn(options=1) + CCI,
    "bad_session_id_size": conn(sid=16),
    "bad_cci": conn() + b"cca\0" + b"\0" * 4,
    "fd_mode_unix": conn(fd=1) + CCI,
    "unknown_session": conn(sid=32) + b"\x11" * 32,
    "unknown_command": HELLO + cmd(7, b""),
    "body_too_large": HELLO + u32(0) + u32(100_001) + b"\0" * 8,
    "transact_body_too_small": HELLO + cmd(0, b"\0" * 16),
    "truncated_body": HELLO + u32(0) + u32(40) + b"\0" * 8 + b"\0" * 20,
    "dec_strong_bad_size": HELLO + cmd(2, b"\0" * 12),
    "object_table_misaligned": ROOT + txn(3, 1, s16(DESC), table=b"\0\0"),
    "parcel_size_exceeds_body": ROOT + txn(3, 1, s16(DESC), pds=1000),
    "object_offset_out_of_range": ROOT + txn(3, 1, s16(DESC), table=u32(len(s16(DESC)) - 4)),
    "fd_object_in_v1": ROOT + txn(3, 1, s16(DESC) + u32(2) + u32(0), table=u32(len(s16(DESC)))),
    "dec_strong_unknown_address": HELLO + dec_strong(3, 1),
    "dec_strong_underflow": ROOT + dec_strong(3, 2),
    "bad_address_options": ROOT + txn(7, 1, s16(DESC)),
    "unknown_local_address": ROOT + txn(0x0000000500000003, 1, s16(DESC)),
    "reply_to_server": HELLO + reply(u32(0)),
    "oneway_async_gap": ROOT + txn(3, 1, s16(DESC), flags=1, async_no=5),
}

NEW_SESSION = u32(1) + b"\0" * 4
MAXT = reply(u32(1))
SID = reply(u32(32) + b"\x22" * 32)
ROOT_REPLY = reply(u32(1) + struct.pack("<Q", 3) + u32(0x0C))

client = {
    "version_above_offer": b"\x01" + u32(2) + b"\0" * 4,
    "zero_max_threads": b"\x01" + NEW_SESSION + reply(u32(0)),
    "short_session_id": b"\x01" + NEW_SESSION + MAXT + reply(u32(4) + b"\x22" * 4),
    "null_root": b"\x01" + NEW_SESSION + MAXT + SID + reply(u32(0) + u32(0)),
    "root_not_for_server": b"\x01" + NEW_SESSION + MAXT + SID + reply(u32(1) + struct.pack("<Q", 1) + u32(0x0C)),
    "dec_strong_unknown": b"\x01" + NEW_SESSION + MAXT + SID + ROOT_REPLY + dec_strong(0x0000000900000003, 1),
    "reply_too_small": b"\x01" + NEW_SESSION + cmd(1, b"\0" * 8),
    "nested_transact_to_client": b"\x01" + NEW_SESSION + MAXT + SID + ROOT_REPLY + txn(3, 1),
    "v2_binder_not_in_table": b"\x02" + u32(2) + b"\0" * 4 + MAXT + SID + ROOT_REPLY,
    "descriptor_not_terminated": b"\x01" + NEW_SESSION + MAXT + SID + ROOT_REPLY + dec_strong(3, 1)
    + reply(u32(1) + b"a\0b\0"),
}

parcel = {
    "string_not_terminated": b"\x00" + u32(1) + b"a\0b\0",
    "string_invalid_utf16": b"\x00" + u32(1) + b"\x00\xd8\0\0",
    "string_negative_length": b"\x00" + u32(-2),
    "string_huge_length": b"\x00" + u32(0x7FFFFFFF) + b"a\0\0\0",
    "bytes_truncated": b"\x01" + u32(16) + b"abcd",
    "binder_bad_type": b"\x02" + u32(2) + u32(0),
    "status_stack_header_too_big": b"\x03" + u32(-5) + u32(0xFFFFFFFF) + u32(100),
    "status_fat_header_negative": b"\x03" + u32(-128) + u32(-4),
    "parcelable_size_too_small": b"\x04" + u32(1) + u32(3),
    "parcelable_size_past_end": b"\x04" + u32(1) + u32(64) + u32(0),
    "parcelable_null": b"\x04" + u32(0),
    "token_mismatch": b"\x05" + s16("android.os.IServiceManager"),
}

for sub, files in (("server", server), ("client", client), ("parcel", parcel)):
    d = os.path.join(HERE, "bad", sub)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
