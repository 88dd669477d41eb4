"""offgate gate firmware (MicroPython; also importable under CPython for tooling)."""
VERSION = "0.1.0"
