"""Click options derived from the options dataclasses (core/options.py), never written twice.

``@dataclass_options(TrainOptions, "options")`` adds one click option per declared field
(its flag, help, default and range from the field's metadata) and hands the command one
``TrainOptions`` instead of twenty keyword arguments. ``@config_option(...)`` adds
``--config FILE``: its values come first, flags given on the command line win over them.
Ranges are not checked here: the dataclass checks them, once, for every caller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import (
    OptionError,
    OptionSpec,
    load_config_file,
    option_specs,
)

_CLICK_TYPES: dict[type, Any] = {int: int, float: float, str: str, Path: click.Path()}
# Field name → flag, for every option a command offers: errors that name a field are shown
# with the flag the user typed (see common.CommandGroup).
FLAGS: dict[str, str] = {}


def _param_name(spec: OptionSpec) -> str:
    return f"opt_{spec.name}"


def _help(spec: OptionSpec) -> str:
    text = spec.help
    extras = []
    if spec.default_help:
        extras.append(f"default: {spec.default_help}")
    elif spec.kind is not bool and spec.default not in (None, [], ()):
        shown = ",".join(spec.default) if isinstance(spec.default, list) else spec.default
        extras.append(f"default: {shown}")
    if spec.range_text():
        extras.append(spec.range_text())
    return f"{text} [{'; '.join(extras)}]" if extras else text


def _click_option(spec: OptionSpec) -> Callable:
    name = _param_name(spec)
    flags = spec.flags
    kwargs: dict[str, Any] = {"help": _help(spec), "expose_value": True}
    if spec.kind is bool:
        # A flag sets the opposite of the default: --lora (False → True), --no-balance.
        return click.option(
            *flags, name, is_flag=True, flag_value=not spec.default, default=None, help=spec.help
        )
    if spec.choices:
        kwargs["type"] = click.Choice(spec.choices)
    elif spec.kind is list:
        kwargs["multiple"] = True
        kwargs["type"] = str
    else:
        kwargs["type"] = _CLICK_TYPES.get(spec.kind, str)
    if spec.flag_value is not None:
        kwargs.update(is_flag=False, flag_value=spec.flag_value)
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    # No click default: a value not given comes from --config, else from the dataclass.
    kwargs["default"] = () if spec.kind is list else None
    return click.option(*flags, name, **kwargs)


def _none_option(spec: OptionSpec) -> Callable:
    flag, help_text = spec.none_flag  # type: ignore[misc]
    return click.option(flag, f"none_{spec.name}", is_flag=True, help=help_text)


def dataclass_options(
    cls: type, into: str, *, exclude: tuple[str, ...] = (), fixed: dict | None = None
) -> Callable:
    """Adds ``cls``'s options to a command, which receives ``into=cls(...)``.

    ``exclude``: fields this command does not offer; ``fixed``: values it sets itself.
    """
    specs = [s for s in option_specs(cls) if s.cli and s.name not in exclude]
    for spec in specs:
        FLAGS.setdefault(spec.name, spec.flags[-1])

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_options(*args, **kwargs):
            ctx = click.get_current_context()
            config = ctx.meta.get("huggingtweets.config", {})
            values: dict[str, Any] = {}
            for spec in option_specs(cls):
                if spec.name in config:
                    values[spec.name] = config[spec.name]
            flagged = set(fixed or {})
            for spec in specs:
                name = _param_name(spec)
                value = kwargs.pop(name)
                if spec.none_flag and kwargs.pop(f"none_{spec.name}"):
                    values[spec.name] = None
                    flagged.add(spec.name)
                    continue
                source = ctx.get_parameter_source(name)
                if source not in (None, ParameterSource.DEFAULT):
                    values[spec.name] = list(value) if spec.kind is list else value
                    flagged.add(spec.name)
            values.update(fixed or {})
            try:
                kwargs[into] = cls(**values)
            except OptionError as exc:
                if exc.name in flagged:
                    raise
                raise config_value_error(ctx, exc) from None
            return command(*args, **kwargs)

        for spec in reversed(specs):
            if spec.none_flag:
                with_options = _none_option(spec)(with_options)
            with_options = _click_option(spec)(with_options)
        return with_options

    return decorate


def config_value_error(ctx: click.Context, exc: OptionError) -> HuggingtweetsError:
    """``exc`` about a value that --config FILE gave (not a flag): the file and the key
    the user wrote are named, not a flag they never typed (``card: "no"`` is not
    "--no-card must be true or false"). Without a config, ``exc`` as it is."""
    path = ctx.meta.get("huggingtweets.config_path")
    config = ctx.meta.get("huggingtweets.config", {})
    if path is None or exc.name not in config:
        return exc
    return HuggingtweetsError(f"{path}: {exc.name} {exc.problem}")


def config_file_option(load: Callable[[click.Context, Path], None], help: str) -> Callable:
    """``--config FILE``, read before the other options (``load`` puts its values where
    the derived flags find them: ``ctx.meta["huggingtweets.config"]``)."""

    def callback(ctx: click.Context, _param, value) -> Path | None:
        if value is None:
            return None
        load(ctx, Path(value))
        ctx.meta["huggingtweets.config_path"] = Path(value)  # named in what is wrong
        return Path(value)

    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        callback=callback,
        is_eager=True,
        expose_value=False,
        metavar="FILE",
        help=help,
    )


def config_option(
    *classes: type, also: tuple[str, ...] = (), refused: Mapping[str, str] | None = None
) -> Callable:
    """``--config FILE``: option values from YAML or JSON (flags given win over them).

    Its keys: the fields of ``classes`` and the names in ``also`` (options a command reads
    itself, such as ``text_column``); a key in ``refused`` (an option of the command that a
    file shared between runs must not hold) is refused with its reason, any other as unknown.
    """
    names = ", ".join(cls.__name__ for cls in classes)
    known = sorted({s.name for cls in classes for s in option_specs(cls)} | set(also))

    def load(ctx: click.Context, path: Path) -> None:
        data = load_config_file(path)
        for key in data:  # unknown keys fail now, naming the known ones
            if refused and key in refused:
                raise HuggingtweetsError(
                    f"{path}: {key!r} is not read from a config file: {refused[key]}"
                )
            if key not in known:
                raise HuggingtweetsError(
                    f"{path}: unknown option {key!r}; known: {', '.join(known)}"
                )
        ctx.meta["huggingtweets.config"] = data

    return config_file_option(
        load,
        help=f"Options from a YAML or JSON file ({names} field names, e.g. "
        "`num_train_epochs: 2`); flags given here win over it.",
    )
