"""Simulator adapters: what the ESP32 adapters do with pins and UARTs, done with stdio and sockets."""
