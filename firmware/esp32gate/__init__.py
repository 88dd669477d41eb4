"""ESP32 hardware adapters for the gate: GM65 scanner on a UART, relay/LEDs/buzzer, watchdog, RTC,
hardening, and the application that wires them to offgate.gate (app.py; firmware/main.py runs it).

The package is not called `esp32`: the ESP32 port has a built-in, non-extensible module of that
name, which would shadow a package of the same name on the device (`import esp32.scanner` fails).
These modules import `machine`; nothing under offgate/ does.
"""
