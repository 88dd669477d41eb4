# offgate gate on an ESP32: MicroPython runs this file at boot (after boot.py).
#
# It stays a few lines of source on purpose: main.py is compiled on the device at every boot,
# everything else is deployed precompiled (.mpy, `make mpy`) or frozen into the firmware image
# (build/<board>/manifest.py). The work is in esp32gate/app.py: load and validate gate.json
# (a wrong value is printed by name and the gate does not start), outputs inactive, safe mode
# (safe pin held, or repeated crashes), console lock, watchdog, scanner setup, gate.build, then
# the supervised asyncio tasks. See docs/hardware.md.
from esp32gate import app

app.main()
