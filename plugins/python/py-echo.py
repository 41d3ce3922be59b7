"""py-echo: returns its input (parsed and written back as JSON)."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "py-echo", "0.1.0", "Returns its input (Python)"

    def handle(self, data, ctx):
        return data
