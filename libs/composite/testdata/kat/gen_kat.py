#!/usr/bin/env python3
"""Partition contents of the known-answer example in docs/formats/composite-disk.md (Checks).

random.seed(1); p1 = 10000 bytes of getrandbits(8), p2 = the next 8192 bytes.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
random.seed(1)
p1 = bytes(random.getrandbits(8) for _ in range(10000))
p2 = bytes(random.getrandbits(8) for _ in range(8192))
for name, data in (("p1.img", p1), ("p2.img", p2)):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
