"""py-busy-loop: spins forever. Stopped by fuel or by the deadline."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "py-busy-loop", "0.1.0", "Spins forever (hostile, Python)"

    def handle(self, data, ctx):
        fs.log.info("spinning")
        x = 0
        while True:
            x = (x * 31 + 7) % 1000003
