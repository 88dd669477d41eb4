"""Simulated relay, LEDs and buzzer: each action is one line on a text stream (stderr by default),
and counted, so tests and the demo can see what the gate drove."""
from offgate import reasons as R


class SimActuator:
    def __init__(self, stream=None):
        self.stream = stream
        self.pulses = 0
        self.denies = 0

    def _say(self, text):
        if self.stream is not None:
            self.stream.write(text + "\n")

    def open(self, ms):
        self.pulses += 1
        self._say("relay: pulse %d ms, led: green" % ms)

    def deny(self, reason):
        self.denies += 1
        self._say("relay: closed, led: red, buzzer: deny (%s)" % R.name(reason))
