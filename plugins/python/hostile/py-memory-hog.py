"""py-memory-hog: keeps 1 MiB buffers alive forever. Stopped by the memory cap."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "py-memory-hog", "0.1.0", "Allocates without end (hostile, Python)"

    def handle(self, data, ctx):
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
