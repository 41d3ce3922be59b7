"""{{name}}: greets {"name": "..."} with {"greeting": "Hello, ...!"}."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "{{name}}", "0.1.0", "A flowhost step"

    def handle(self, data, ctx):
        if not isinstance(data, dict) or not data.get("name"):
            raise fs.InvalidInput("name is missing")
        fs.log.info(f"greeting {data['name']} (attempt {ctx.attempt})")
        return {"greeting": f"Hello, {data['name']}!"}
