"""Options defined once: on their dataclass field, with default, help and range.

Every stage takes its options as a dataclass (``PrepareOptions``, ``TrainOptions`` ...).
Each field says everything about itself in its metadata, through :func:`option`; from
that one place come the checks (:func:`check_options`, called by ``__post_init__``), the
command line (``cli_options.py`` derives the click options, as transformers'
``HfArgumentParser`` does), options read from a file or a web form
(:func:`options_from_dict`), and what ``metrics.json`` records (:func:`options_to_dict`).

Errors name the *field* (:class:`OptionError`); the CLI translates the name to its flag.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import types
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from huggingtweets.core.errors import HuggingtweetsError

T = TypeVar("T")
MAX_SEED = 2**63 - 1  # what torch and numpy accept as a seed
MAX_CONFIG_BYTES = 1 << 20  # a config of options is a few hundred bytes


class OptionError(HuggingtweetsError):
    """A bad value for the option ``name`` (a field name; the CLI shows its flag)."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name} {problem}")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    choices: Sequence[str] | None = None,
    flag: str | tuple[str, ...] | None = None,
    metavar: str | None = None,
    cli: bool = True,
    default_help: str | None = None,
    flag_value: Any = None,
    none_flag: tuple[str, str] | None = None,
) -> Any:
    """A dataclass field with what the checks and the CLI need to know.

    ``flag``: the CLI spelling when it is not ``--field-name`` (``--no-balance`` for a
    field ``balance`` that defaults to True). ``default_help``: how the help shows a
    default that is computed (``None`` meaning "the model's own"). ``cli=False``: data
    only, not offered on the command line. ``flag_value``: the value of the flag given
    without one (``--early-stopping`` = ``--early-stopping 2``). ``none_flag``: (flag,
    help) of a second flag that sets the field to None (``--keep-base-dropout``).
    """
    metadata = {
        "help": help,
        "min": min,
        "max": max,
        "min_open": min_open,
        "max_open": max_open,
        "choices": tuple(choices) if choices is not None else None,
        "flag": flag,
        "metavar": metavar,
        "cli": cli,
        "default_help": default_help,
        "flag_value": flag_value,
        "none_flag": none_flag,
    }
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"option": metadata}
    )


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """A field as the checks and the CLI see it."""

    name: str
    kind: type  # bool, int, float, str, Path, or list (of str)
    optional: bool  # None is allowed
    default: Any
    help: str
    min: float | None
    max: float | None
    min_open: bool
    max_open: bool
    choices: tuple[str, ...] | None
    flag: str | tuple[str, ...] | None
    metavar: str | None
    cli: bool
    default_help: str | None
    flag_value: Any
    none_flag: tuple[str, str] | None

    @property
    def flags(self) -> tuple[str, ...]:
        """The command-line spellings, the long one last."""
        if self.flag is None:
            return ("--" + self.name.replace("_", "-"),)
        return (self.flag,) if isinstance(self.flag, str) else tuple(self.flag)

    def range_text(self) -> str | None:
        if self.min is None and self.max is None:
            return None
        low = "" if self.min is None else f"{'>' if self.min_open else '>='}{_number(self.min)}"
        high = "" if self.max is None else f"{'<' if self.max_open else '<='}{_number(self.max)}"
        return ", ".join(part for part in (low, high) if part)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _kind(annotation: Any) -> tuple[type, bool]:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin in (list, Sequence, tuple):
        return list, optional
    return annotation, optional


@cache
def option_specs(cls: type) -> tuple[OptionSpec, ...]:
    """The fields of ``cls`` declared with :func:`option`, in order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        kind, optional = _kind(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        specs.append(OptionSpec(f.name, kind, optional, default, **meta))
    return tuple(specs)


def _describe(spec: OptionSpec) -> str:
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    words = {int: "a whole number", float: "a number", bool: "true or false"}
    text = words.get(spec.kind, "text")
    if spec.kind is list:
        text = "a list of names"
    if spec.range_text():
        text += f" ({spec.range_text()})"
    return text


def check_value(spec: OptionSpec, value: Any) -> Any:
    """``value`` checked (and a whole-number float for a float option made a float)."""
    if value is None:
        if spec.optional:
            return None
        raise OptionError(spec.name, f"must be {_describe(spec)} (got nothing)")
    kind = spec.kind
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if not math.isfinite(value):
                raise OptionError(spec.name, f"must be a finite number (got {value})")
    elif kind is list:
        if isinstance(value, str):
            value = [value]
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif kind is Path:
        ok = isinstance(value, str | Path)
        value = Path(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise OptionError(spec.name, f"must be {_describe(spec)} (got {value!r})")
    if spec.choices and value not in spec.choices:
        raise OptionError(spec.name, f"must be one of {', '.join(spec.choices)} (got {value!r})")
    if kind in (int, float):
        below = spec.min is not None and (value <= spec.min if spec.min_open else value < spec.min)
        above = spec.max is not None and (value >= spec.max if spec.max_open else value > spec.max)
        if below or above:
            raise OptionError(spec.name, f"must be {spec.range_text()} (got {_number(value)})")
    return value


def check_options(obj: Any) -> None:
    """Check every declared option of the dataclass instance ``obj`` (in place)."""
    for spec in option_specs(type(obj)):
        setattr(obj, spec.name, check_value(spec, getattr(obj, spec.name)))


def options_from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "") -> T:
    """An options dataclass from data (a config file, a web form); unknown keys refused."""
    names = {spec.name for spec in option_specs(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{source}: " if source else ""
        raise HuggingtweetsError(
            f"{where}unknown option {unknown[0]!r}; known: {', '.join(sorted(names))}"
        )
    return cls(**data)


def options_to_dict(obj: Any) -> dict[str, Any]:
    """The declared options of ``obj`` as plain data (for metrics.json, trackers, forms)."""
    out = {}
    for spec in option_specs(type(obj)):
        value = getattr(obj, spec.name)
        out[spec.name] = str(value) if isinstance(value, Path) else value
    return out


# YAML 1.2 and JSON read `1e-3` as a number; PyYAML follows YAML 1.1, whose floats need a
# dot (`1.0e-3`), and reads it as the string "1e-3". The floats YAML 1.2's core schema
# adds: an exponent without a dot, and a dot without digits after it (`1.`, `1.e5`).
_YAML12_FLOAT = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"


@cache
def _yaml12_loader() -> type:
    """PyYAML's SafeLoader, reading YAML 1.2's floats as numbers too."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            # A key given twice: PyYAML keeps the last one silently. A merge key (<<) is
            # not a repeat: the keys written beside it override what it merges, by design.
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                    if key is not None and key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"{key!r} twice: keep one", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # Added after SafeLoader's resolvers, so integers ("3") still resolve as integers first.
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(_YAML12_FLOAT), list("-+.0123456789")
    )
    return Loader


def _config_not_regular(path: Path) -> HuggingtweetsError:
    return HuggingtweetsError(
        f"the config file {path} is not a regular file (a named pipe, socket or device "
        "cannot be read as options); save its content to a file and give that"
    )


def _read_config_bytes(path: Path) -> bytes:
    """A config file's bytes: a regular file only (a FIFO or /dev/zero would be read for
    ever), and at most MAX_CONFIG_BYTES."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before opening: opening a device may act
            raise _config_not_regular(path)
        # O_NONBLOCK: should a FIFO replace the file after the check, opening it does not
        # wait for a writer; fstat then sees what was opened.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _config_not_regular(path)
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise HuggingtweetsError(f"cannot read the config file {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise HuggingtweetsError(
            f"the config file {path} is more than {MAX_CONFIG_BYTES >> 20} MiB, far more than "
            "a config of options ever holds; is this the right file?"
        )
    return data


def load_config_file(path: Path) -> dict[str, Any]:
    """Options from a YAML or JSON file: one mapping of field names to values."""
    import yaml  # YAML is a superset of JSON: one parser reads both

    try:
        text = _read_config_bytes(Path(path)).decode("utf-8")
    except UnicodeDecodeError:
        raise HuggingtweetsError(f"{path}: not a text file (expected YAML or JSON)") from None
    try:
        data = yaml.load(text, Loader=_yaml12_loader())  # a SafeLoader: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HuggingtweetsError(f"{path}: not valid YAML or JSON{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise HuggingtweetsError(
            f"{path}: expected a mapping of option names to values (e.g. `num_train_epochs: 2`)"
        )
    options: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in options:  # max-steps and max_steps: one option, given twice
            first = next(k for k in data if k.replace("-", "_") == name)
            raise HuggingtweetsError(
                f"{path}: {first!r} and {key!r} are one option, given twice: keep one"
            )
        options[name] = value
    return options
