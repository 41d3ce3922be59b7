"""{{name}}: greets {"name": "..."} with {"greeting": "Hello, ...!"}.
With config {"database": NAME} (and the flow granting it), it also runs one query."""

import flowhost_step as fs


class WitWorld(fs.Step):
    name, version, description = "{{name}}", "0.1.0", "A flowhost step"

    def handle(self, data, ctx):
        if not isinstance(data, dict) or not data.get("name"):
            raise fs.InvalidInput("name is missing")
        fs.log.info(f"greeting {data['name']} (attempt {ctx.attempt})")
        out = {"greeting": f"Hello, {data['name']}!"}
        database = ctx.config.get("database") if isinstance(ctx.config, dict) else None
        if database:
            # Parameters are bound (?1 on SQLite, $1 on PostgreSQL), never pasted into the SQL.
            out["rows"] = fs.db(database).query("select ?1 as name, length(?1) as letters", [data["name"]])
        return out
