# The ESP32 gate's firmware (MicroPython manifest format). Read by the host for `make mpy` /
# `offgate board build <esp32 board>` (.mpy files, ROMFS images) and included by the generated
# freeze manifest (build/<board>/manifest.py) for a custom image. Paths are relative to this
# directory. main.py, the boot script MicroPython runs from the filesystem, is deployed as source
# beside these packages and is not listed here (a frozen main.py would not run at boot).
# The version is the project's one number: offgate.VERSION (tests/firmware/test_manifests.py holds the
# manifests and host_tools/pyproject.toml to it).
metadata(description="offgate gate firmware for the ESP32 (gate logic and the ESP32 adapters)", version="0.1.0")
package("offgate", base_path="..")
package("esp32gate", base_path="..")
