"""Op config that fails in one line: a value out of range names its field and the allowed range.

Dagster's config schema checks types, enums and required fields at launch (the Launchpad shows
those); ranges it cannot express (Dagster 1.13's config types have no bounds). They are pydantic
constraints on the fields, checked when the op's config is built, before the op's body runs: a
bad value fails the step with `dg.Failure` whose description is one line, instead of pydantic's
multi-line error. Dagster shows every step failure with its stack trace (a `dg.Failure` too,
raised here or in the op's body alike), so the same line is first logged at ERROR in the run's
event log: the one event that reads as just that line.

A field that is a view of a setting is declared with `setting_field` (crypto_assets.settings): the
`Settings` field itself, so its default, bounds and validators are the model's, never a copy. The
class the job uses is derived with `with_defaults`, whose defaults are the deployment's settings:
the Launchpad then pre-fills the values the deployment was built with.
"""

from __future__ import annotations

import copy
from typing import Any, Self

import annotated_types
import dagster as dg
from pydantic import ValidationError, create_model
from pydantic.fields import FieldInfo

_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
)


def allowed_range(field: FieldInfo) -> str | None:
    """The field's numeric bounds in words, e.g. ``> 0 and ≤ 3600``; None when it has none."""
    parts = [
        f"{symbol} {getattr(bound, attribute):g}"
        for kind, attribute, symbol in _BOUNDS
        for bound in field.metadata
        if isinstance(bound, kind)
    ]
    return " and ".join(parts) or None


def upper_bound(field: FieldInfo) -> float:
    """The field's upper bound (``le``), for a field that has one."""
    return next(bound.le for bound in field.metadata if isinstance(bound, annotated_types.Le))


def config_error_line(config_cls: type[dg.Config], error: ValidationError) -> str:
    """All problems of one validation in one line: ``field=value: allowed range or reason``."""
    problems = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        field = config_cls.model_fields.get(str(problem["loc"][0])) if problem["loc"] else None
        bounds = allowed_range(field) if field is not None else None
        if problem["type"] == "value_error":
            reason = str(problem["ctx"]["error"])
            if reason.startswith(f"{name}="):  # a message that names the value already
                problems.append(reason)
                continue
        elif bounds is not None:
            reason = f"allowed {bounds}"
        else:
            reason = problem["msg"]
        problems.append(f"{name}={problem['input']!r}: {reason}" if name else reason)
    return f"{config_cls.__name__}: " + "; ".join(problems)


def log_in_run(line: str) -> None:
    """Log `line` at ERROR in the event log of the step being executed, if one is."""
    try:
        context = dg.OpExecutionContext.get()
    except dg.DagsterInvariantViolationError:
        return  # built outside a step (a test, a sensor): the Failure alone says it
    context.log.error(line)


class CheckedConfig(dg.Config):
    """A `dg.Config` whose validation error is a `dg.Failure` with a one-line description."""

    def __init__(self, **values: Any) -> None:
        """Validate `values`; a bad one is logged and raised as `dg.Failure`, in one line."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            line = config_error_line(type(self), exc)
            log_in_run(line)
            # A retry would read the same config: fail for good even under a retry policy.
            raise dg.Failure(description=line, allow_retries=False) from None

    @classmethod
    def with_defaults(cls, **defaults: Any) -> type[Self]:
        """This config class with `defaults` as its fields' defaults (bounds and docs kept)."""
        fields: dict[str, Any] = {}
        for name, default in defaults.items():
            field = copy.copy(cls.model_fields[name])
            field.default = default
            fields[name] = (field.annotation, field)
        return create_model(cls.__name__, __base__=cls, __module__=cls.__module__, **fields)
