# The simulated gate's firmware for the MicroPython unix port (MicroPython manifest format). Read
# by the host for the simulator's .mpy build (offgate_host.device.simgate.compile_firmware), `offgate
# board build sim` and the ROMFS images of bench/heap32.py. Paths are relative to this directory.
# The version is the project's one number: offgate.VERSION (tests/firmware/test_manifests.py).
metadata(description="offgate gate firmware for the simulator (gate logic and the simulator's adapters)", version="0.1.0")
package("offgate", base_path="..")
package("sim", base_path="..")
module("sim_main.py", base_path="..")
