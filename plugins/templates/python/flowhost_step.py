"""flowhost step helper for Python (componentize-py): JSON in and out, typed
errors, logging.

    import flowhost_step as fs

    class WitWorld(fs.Step):
        name, version, description = "greet", "0.1.0", "Greets a person"

        def handle(self, data, ctx):
            if "name" not in data:
                raise fs.InvalidInput("name is missing")
            fs.log.info(f"greeting {data['name']}")
            return {"greeting": f"Hello, {data['name']}!"}

`handle` receives the parsed input and a Context (flow, run_id, step_id,
attempt, config: the parsed config, {} when none; ctx.execution_key(): the
`<run id>/<step path>` key, the same on every attempt and after a host
restart, for idempotent side effects) and returns any JSON value.
Raising Transient, Permanent or InvalidInput (all StepError) fails the call
with that step-error; so does raising componentize-py's
`Err(StepError_Permanent("..."))` directly. Any other exception is a bug: its
traceback goes to the host log (stderr) and the call traps.
"""

import json
from dataclasses import dataclass
from typing import Any

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import (
    Metadata,
    StepError_InvalidInput,
    StepError_Permanent,
    StepError_Transient,
)


class StepError(Exception):
    """A failure in the step's own words; use a subclass."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)

    def to_wit(self):
        raise NotImplementedError


class Transient(StepError):
    """Retrying may help."""

    def to_wit(self):
        return StepError_Transient(self.message)


class Permanent(StepError):
    """Retrying will not help."""

    def to_wit(self):
        return StepError_Permanent(self.message)


class InvalidInput(StepError):
    """The input was not acceptable."""

    def to_wit(self):
        return StepError_InvalidInput(self.message)


class log:
    """The host log, tagged with the step. Volume per call is capped by the host."""

    @staticmethod
    def trace(message: str) -> None:
        host.log(host.Level.TRACE, str(message))

    @staticmethod
    def debug(message: str) -> None:
        host.log(host.Level.DEBUG, str(message))

    @staticmethod
    def info(message: str) -> None:
        host.log(host.Level.INFO, str(message))

    @staticmethod
    def warn(message: str) -> None:
        host.log(host.Level.WARN, str(message))

    @staticmethod
    def error(message: str) -> None:
        host.log(host.Level.ERROR, str(message))


@dataclass
class Context:
    flow: str
    run_id: str
    step_id: str
    attempt: int
    config: Any

    def execution_key(self) -> str:
        """`<run id>/<step path>`: the same on every attempt and after a host
        restart (a step in flight then runs again); for idempotent side effects."""
        return host.execution_key()


def _parse(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise Err(StepError_InvalidInput(f"{what} is not valid JSON: {e}"))


class Step(wit_world.WitWorld):
    """Base class of a step: set name, version, description; define handle."""

    name = "step"
    version = "0.1.0"
    description = ""

    def handle(self, data: Any, ctx: Context) -> Any:
        raise NotImplementedError

    def describe(self) -> Metadata:
        return Metadata(self.name, self.version, self.description)

    def run(self, ctx, input: str) -> str:
        data = _parse(input, "input")
        config = _parse(ctx.config or "{}", "config")
        config = {} if config is None else config  # a missing config is {}
        context = Context(ctx.flow, ctx.run_id, ctx.step_id, ctx.attempt, config)
        try:
            out = self.handle(data, context)
        except StepError as e:
            raise Err(e.to_wit())
        return json.dumps(out)
