"""py-stamp: takes a JSON object, appends "python" to its `path` list and adds
`python: {keys}`. Anything but an object is invalid-input; config
{"fail": "transient"|"permanent"} fails on purpose."""

import flowhost_step as fs

FAILURES = {"transient": fs.Transient, "permanent": fs.Permanent}


class WitWorld(fs.Step):
    name, version, description = "py-stamp", "0.1.0", 'Stamps a JSON object with "python" (Python example)'

    def handle(self, data, ctx):
        if not isinstance(data, dict):
            raise fs.InvalidInput(f"expected a JSON object, got {type(data).__name__}")
        kind = ctx.config.get("fail") if isinstance(ctx.config, dict) else None
        if kind in FAILURES:
            raise FAILURES[kind](f"failing on purpose (attempt {ctx.attempt})")
        fs.log.info(f"stamping an object of {len(data)} keys")
        path = data.get("path") if isinstance(data.get("path"), list) else []
        return {**data, "path": path + ["python"], "python": {"keys": len(data)}}
