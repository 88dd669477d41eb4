"""Production hardening: console lock, safe mode, crash counting.

- `lock_console()` (config `hardening.detach_repl`): Ctrl-C disabled (`micropython.kbd_intr(-1)`)
  and every dupterm slot detached (`os.dupterm(None, i)`: WebREPL or any UART/USB attached as a
  terminal). On the ESP32 the UART0/USB console itself is not a dupterm slot: it stays the
  process's stdin/stdout, but with Ctrl-C off and main.py never returning (an unexpected error
  resets the chip instead of falling into the REPL) nothing reads it as a REPL: mpremote cannot
  interrupt the gate. The scanner's UART is never a terminal.
- Safe mode: the gate does not start (relay off, red LED on, no watchdog) and main.py returns to
  the REPL, so an operator can repair or redeploy over USB. Entered when the safe pin is held
  low at boot (a jumper or button to GND; the pin has a pull-up) or after `max_crashes` boots in a
  row that never ran `stable_s` seconds (boot loop: a bad deploy, a crash in a task, a watchdog
  reset loop). Recovery when the safe pin is not wired: `esptool erase_flash` + reflash + deploy.
- Crash counting: a small file holds the number of boots since the last stable run; incremented
  at every boot (one flash write per boot), cleared once the gate has run `stable_s` seconds.
"""
import time


class CrashCounter:
    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path) as f:
                return int(f.read().strip() or "0")
        except (OSError, ValueError):
            return 0

    def _write(self, n):
        try:
            with open(self.path, "w") as f:
                f.write("%d\n" % n)
        except OSError:
            pass

    def boot(self):
        n = self.read() + 1
        self._write(n)
        return n

    def clear(self):
        if self.read():
            self._write(0)


def safe_pin_held(pin_id, pin_cls=None, samples=3, gap_ms=10):
    """True if the safe pin reads low on every sample (pull-up on; jumper/button to GND)."""
    if pin_id is None:
        return False
    if pin_cls is None:
        from machine import Pin as pin_cls
    p = pin_cls(pin_id, pin_cls.IN, pin_cls.PULL_UP)
    for i in range(samples):
        if p.value():
            return False
        if i + 1 < samples:
            time.sleep_ms(gap_ms)
    return True


def decide(hcfg, counter, pin_cls=None):
    """("normal" | "safe", why). Counts this boot."""
    if safe_pin_held(hcfg.get("safe_pin"), pin_cls):
        return "safe", "safe pin held at boot"
    n = counter.boot()
    limit = hcfg.get("max_crashes", 5)
    if n > limit:
        return "safe", "%d boots in a row without a stable run (limit %d)" % (n - 1, limit)
    return "normal", None


def lock_console(os_mod=None, mp_mod=None, slots=(0, 1, 2)):
    """Ctrl-C off, dupterm slots detached. Returns what was done (for the boot log)."""
    if os_mod is None:
        import os as os_mod
    if mp_mod is None:
        import micropython as mp_mod
    done = []
    try:
        mp_mod.kbd_intr(-1)
        done.append("kbd_intr")
    except Exception:
        pass
    dupterm = getattr(os_mod, "dupterm", None)
    if dupterm is not None:
        for i in slots:
            try:
                dupterm(None, i)
                done.append("dupterm%d" % i)
            except Exception:  # slot index not supported on this port
                pass
    return done
