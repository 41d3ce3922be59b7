"""py-raise: raises. {"typed": true} raises Permanent (a permanent step-error);
otherwise a plain KeyError, which is a bug: the call traps."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "py-raise", "0.1.0", "Raises (hostile, Python)"

    def handle(self, data, ctx):
        if isinstance(data, dict) and data.get("typed"):
            raise fs.Permanent("hostile typed raise")
        return {}["hostile raise"]
