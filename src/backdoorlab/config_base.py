"""Base schemas shared by every config section."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from backdoorlab.errors import ConfigError


class QuietDefaults(BaseModel):
    """A schema whose `quiet` settings (added after results were published) are left out of its
    dump while at their default, so the configs, hashes and cell keys of earlier runs stay valid."""

    quiet: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_quiet_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        for key in self.quiet:
            default = type(self).model_fields[key].get_default(call_default_factory=True)
            if key in out and getattr(self, key) == default:
                del out[key]
        return out


class Section(QuietDefaults):
    """A config section that selects a component by `name`; unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, validate_assignment=True, frozen=False
    )

    name: str


def _offences(exc: ValidationError, quote: str = "") -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] != "missing" and not isinstance(err.get("input"), dict | list):
            msg += f" (got {err['input']!r})"
        parts.append(f"{quote}{key}{quote}: {msg}")
    return "; ".join(parts)


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each offending key, e.g. 'attack.rate: must be <= 1 (got 1.5)'."""
    return "invalid config: " + _offences(exc)


def parameter_error(exc: ValidationError, function: str) -> str:
    """One line naming each offending parameter of `function` in backticks (the CLI turns them
    into its flags), e.g. "scan: `fpr`: Input should be less than 1 (got 2.0)"."""
    return f"{function}: " + _offences(exc, "`")


def validated(registry: Any, section: dict[str, Any], what: str) -> Any:
    """`section` validated by `registry`; a bad key or value is one ConfigError line."""
    try:
        return registry.validate(section)
    except ValidationError as exc:
        raise ConfigError(f"{what}: " + format_validation_error(exc)) from None
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None
