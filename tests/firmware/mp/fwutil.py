# Helpers shared by firmware test modules (MicroPython and CPython).
import os
import random


def scratch_dir(tag):
    """A fresh directory under /tmp for one test."""
    base = "/tmp/offgate-fwtest-%s-%08x" % (tag, random.getrandbits(32))
    os.mkdir(base)
    return base


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def cti(i):
    return bytes([(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255, 1, 2, 3, 4])
