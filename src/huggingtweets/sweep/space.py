"""The sweep's search space: which options, which distributions (W&B's names), from data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import (
    OptionError,
    check_value,
    load_config_file,
    option_specs,
)
from huggingtweets.train.recipe import TrainOptions

STAGE = "sweep"  # the events' stage
# Options a sweep may search over; warmup_ratio is the sweep's own (warm-up as a share of
# the optimizer steps, turned into warmup_steps for each trial).
SEARCHABLE = (
    "learning_rate",
    "num_train_epochs",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "gradient_accumulation_steps",
    "per_device_train_batch_size",
    "block_size",
    "dropout",
    "lora",
    "lora_r",
    "lora_alpha",
    "early_stopping_patience",
)
# W&B's distribution names (the original's sweep.yaml), with Optuna's meaning.
DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "log_uniform")


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a range (``low``..``high``, log-scaled or not, whole
    numbers or not) or a list of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return f"{self.name} in {list(self.choices)}"
        kind = "log-uniform" if self.log else "uniform"
        kind = ("whole, " if self.integer else "") + kind
        return f"{self.name} {self.low:g}..{self.high:g} ({kind})"


DEFAULT_SPACE = {
    "learning_rate": Param("learning_rate", math.exp(-14), math.exp(-6), log=True),
    "num_train_epochs": Param("num_train_epochs", 1, 10, integer=True),
    "lr_scheduler_type": Param("lr_scheduler_type", choices=("constant", "linear", "cosine")),
    "warmup_ratio": Param("warmup_ratio", choices=(0.0, 0.1, 0.2)),
    "gradient_accumulation_steps": Param("gradient_accumulation_steps", choices=(1, 4, 8)),
}


# -- the space, from data -------------------------------------------------------------------


def _spec(name: str):
    return next(s for s in option_specs(TrainOptions) if s.name == name)


def _check(name: str, value: Any, where: str) -> Any:
    """A value of parameter ``name`` as its option checks it (numbers written as text in
    YAML, such as 1e-5, read as numbers)."""
    if name == "warmup_ratio":
        value = _number(value, name, where)
        if not 0 <= value < 1:
            raise HuggingtweetsError(f"{where}: warmup_ratio must be >=0, <1 (got {value:g})")
        return float(value)
    spec = _spec(name)
    if spec.kind in (int, float) and isinstance(value, str):
        value = _number(value, name, where)
        if spec.kind is int and float(value).is_integer():
            value = int(value)
    try:
        return check_value(spec, value)
    except OptionError as exc:
        raise HuggingtweetsError(f"{where}: {exc.problem}") from None


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        raise HuggingtweetsError(f"{where}: expected a number (got {value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HuggingtweetsError(f"{where}: expected a number (got {value!r})") from None
    if not math.isfinite(number):
        raise HuggingtweetsError(f"{where}: expected a finite number (got {value!r})")
    return int(number) if isinstance(value, int) else number


def parse_space(data: Mapping | None, *, source: str = "sweep config") -> tuple[dict, dict]:
    """(parameters searched, parameters fixed) from a ``parameters:`` mapping over the
    default space. Each entry is ``{values: [...]}``, ``{min: A, max: B}`` (with
    ``distribution: uniform | int_uniform | log_uniform_values | log_uniform`` (the last,
    as in W&B, takes e-exponents), or ``log: true``), or a single value (fixed)."""
    space = dict(DEFAULT_SPACE)
    fixed: dict[str, Any] = {}
    if data is None:
        return space, fixed
    if not isinstance(data, Mapping):
        raise HuggingtweetsError(f"{source}: parameters must be a mapping of option names")
    for raw_name, spec in data.items():
        name = str(raw_name).replace("-", "_")
        where = f"{source}: parameters.{name}"
        if name not in SEARCHABLE:
            raise HuggingtweetsError(
                f"{source}: unknown parameter {raw_name!r}; known: {', '.join(SEARCHABLE)}"
            )
        space.pop(name, None)
        fixed.pop(name, None)
        if not isinstance(spec, Mapping):
            fixed[name] = _check(name, spec, where)
        elif set(spec) == {"value"}:
            fixed[name] = _check(name, spec["value"], where)
        else:
            space[name] = _param(name, spec, where)
    given = {str(name).replace("-", "_") for name in data}
    if {"warmup_ratio", "warmup_steps"} <= given:
        raise HuggingtweetsError(f"{source}: give warmup_ratio or warmup_steps, not both")
    if "warmup_steps" in given:  # it replaces the default warm-up ratio
        space.pop("warmup_ratio", None)
    return space, fixed


def _param(name: str, spec: Mapping, where: str) -> Param:
    unknown = sorted(set(map(str, spec)) - {"values", "min", "max", "distribution", "log"})
    if unknown:
        raise HuggingtweetsError(
            f"{where}: unknown key {unknown[0]!r} (use values, or min and max with "
            "distribution or log)"
        )
    if "values" in spec:
        if set(spec) != {"values"}:
            raise HuggingtweetsError(f"{where}: values cannot be combined with a range")
        values = spec["values"]
        if not isinstance(values, list | tuple) or not values:
            raise HuggingtweetsError(f"{where}: values is empty: give at least one")
        checked = tuple(dict.fromkeys(_check(name, v, where) for v in values))
        return Param(name, choices=checked)
    if "min" not in spec or "max" not in spec:
        raise HuggingtweetsError(f"{where}: give values, or both min and max")
    kind = _spec(name).kind if name != "warmup_ratio" else float
    if kind not in (int, float):
        raise HuggingtweetsError(f"{where}: takes values: [...], not a range")
    distribution = spec.get("distribution")
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise HuggingtweetsError(
            f"{where}: unknown distribution {distribution!r}; one of {', '.join(DISTRIBUTIONS)}"
        )
    low = _number(spec["min"], name, where)
    high = _number(spec["max"], name, where)
    if distribution == "log_uniform":  # W&B's: the bounds are exponents of e
        low, high = math.exp(low), math.exp(high)
    if low > high:
        raise HuggingtweetsError(f"{where}: the range {low:g}..{high:g} is empty (min > max)")
    log = bool(spec.get("log")) or distribution in ("log_uniform", "log_uniform_values")
    if distribution is None:
        integer = isinstance(low, int) and isinstance(high, int)
    else:
        integer = distribution == "int_uniform"
    if kind is int and not integer:
        if distribution is not None:
            raise HuggingtweetsError(f"{where}: a whole number: use int_uniform")
        integer = True
    if log and low <= 0:
        raise HuggingtweetsError(f"{where}: a log scale needs min > 0 (got {low:g})")
    for bound in (low, high):
        _check(name, int(bound) if integer else float(bound), where)
    return Param(name, float(low), float(high), integer=integer, log=log)


def load_sweep_config(path: Path) -> tuple[dict[str, Any], dict | None]:
    """(train options, parameters) from a YAML or JSON file: train's option names at the
    top (``base_model: tiny``) and the search space under ``parameters:``."""
    data = load_config_file(Path(path))
    space = data.pop("parameters", None)
    names = {spec.name for spec in option_specs(TrainOptions)}
    for key in data:
        if key not in names or key in ("resume", "report_to"):
            known = ", ".join(sorted(names - {"resume", "report_to"}))
            raise HuggingtweetsError(f"{path}: unknown option {key!r}; known: parameters, {known}")
    return data, space
