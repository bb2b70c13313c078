"""The ``tamis`` Typer app, its command groups and what every command shares.

Commands live in sibling modules (one per area) that register themselves on these objects;
``tamis.cli`` imports them all.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from tamis import __version__

app = typer.Typer(
    name="tamis",
    help="Make fine-tuning data for language models better, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Inspect and prepare model backends.", no_args_is_help=True)
score_app = typer.Typer(help="Measure every example: one sub-command per signal.", no_args_is_help=True)
experiment_app = typer.Typer(help="Run studies that compare data variants.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(score_app, name="score")
app.add_typer(experiment_app, name="experiment")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar="TAMIS_WORKSPACE",
                            help="Workspace folder for runs, models and the call cache [default: ./tamis-workspace].")
def _check_format(value: Optional[str]) -> Optional[str]:
    """An unknown data format fails when the command line is parsed, with the closest known one."""
    from tamis.errors import unknown
    from tamis.io import FORMATS

    if value is not None and value not in FORMATS:
        raise typer.BadParameter(unknown("format", value, FORMATS))
    return value


def _check_model_spec(value: Any) -> Any:
    """A model spec with an unknown backend fails when the command line is parsed."""
    from tamis.errors import ModelError
    from tamis.models.base import ModelSpec

    if isinstance(value, str) and ":" in value and not value.startswith(("/", ".")):
        try:
            ModelSpec.parse(value)
        except ModelError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


MODEL_SPEC_SETTINGS = ("model", "judge", "embedder", "answer_model", "judge_model", "versus")
FormatOpt = typer.Option(None, "--format", "-f", help="Input format, if auto-detection should be overridden.",
                         callback=_check_format)
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace an output folder made with other settings.")


def _load_config(ctx: typer.Context, value: Optional[Path]) -> Optional[Path]:
    """``--config FILE.yaml``: the file's keys become this command's option defaults (the command line wins)."""
    if value is None:
        return None
    from tamis.errors import ConfigError, unknown
    from tamis.settings import load_config_file

    names: dict[str, str] = {}
    for param in ctx.command.params:
        if param.name and param.name != "config":
            names[param.name] = param.name
            for opt in getattr(param, "opts", []):
                names[opt.lstrip("-").replace("-", "_")] = param.name
    defaults = {}
    try:
        for key, item in load_config_file(str(value)).items():
            name = names.get(str(key).replace("-", "_"))
            if name is None:
                raise ConfigError(f"{value}: {unknown('option', str(key), sorted(set(names.values())))}")
            defaults[name] = ",".join(map(str, item)) if isinstance(item, list) and _is_text_list(ctx, name) else item
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    ctx.default_map = (ctx.default_map or {}) | defaults
    return value


def _is_text_list(ctx: typer.Context, name: str) -> bool:
    """A comma-separated text option (e.g. --lora-targets) given as a YAML list."""
    param = next(p for p in ctx.command.params if p.name == name)
    return not getattr(param, "multiple", False) and getattr(param.type, "name", "") == "text"


def _parse_columns(value: Optional[str]) -> Optional[dict[str, str]]:
    if not value:
        return None
    from tamis.errors import ConfigError
    from tamis.settings import parse_column_map

    try:
        return parse_column_map(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


ColumnsOpt = typer.Option(None, "--columns", metavar="SOURCE=FIELD,...", callback=_parse_columns,
                          help="Rename the data's columns before reading, e.g. sentence=text,answer=output (applies "
                               "to every data set this command reads).")
DATA_PARAMS = ("data", "candidates")  # commands reading a data set get --columns

ConfigOpt = typer.Option(None, "--config", help="YAML file of option values (keys are option names; the command "
                         "line wins).", is_eager=True, callback=_load_config, exists=True, dir_okay=False)


class _EngineOptions:
    """The default of a command's ``engine`` parameter: ``friendly_errors`` replaces that parameter with
    the engine options (``--engine``, ``--address``, ``--workers``, ``--gpus-per-worker``,
    ``--cpus-per-worker``, ``--shards``) and hands the command one ``EngineConfig``."""


EngineOptions: Any = _EngineOptions()
ENGINE_FIELDS = ("engine", "address", "workers", "gpus_per_worker", "cpus_per_worker", "shards")


def _engine_parameters() -> list[inspect.Parameter]:
    from tamis.engine.base import EngineConfig

    types = {"engine": str, "address": Optional[str], "workers": Optional[int], "gpus_per_worker": float,
             "cpus_per_worker": int, "shards": Optional[str]}
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=types[name],
                              default=opt(EngineConfig, name, "--" + name.replace("_", "-")))
            for name in ENGINE_FIELDS]


def _engine_config(values: dict[str, Any]) -> Any:
    from tamis.engine.base import EngineConfig

    return EngineConfig(**values)


def friendly_errors(fn: F) -> F:
    """Give a command ``--config FILE.yaml`` (and, when it reads a data set, ``--columns``) and turn
    expected failures (any ``TamisError``) into one clear line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tamis.errors import TamisError

        from tamis.settings import COLUMN_MAP

        kwargs.pop("config", None)
        if takes_engine:
            kwargs["engine"] = _engine_config({name: kwargs.pop(name) for name in ENGINE_FIELDS})
        token = COLUMN_MAP.set(kwargs.pop("columns", None) if add_columns else None)
        try:
            return fn(*args, **kwargs)
        except (TamisError, FileNotFoundError) as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # never hard-wrap: logs get grepped
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:  # an optional part that is not installed: name its extra
            from tamis.extras import MissingExtra, extra_for

            if extra_for(exc.name) is None:
                raise
            err.print(f"[bold red]error:[/] {escape(str(MissingExtra(extra_for(exc.name), exc.name.split('.')[0])))}",
                      soft_wrap=True)
            raise typer.Exit(2) from None
        finally:
            COLUMN_MAP.reset(token)

    signature = inspect.signature(fn)
    add_columns = any(name in signature.parameters for name in DATA_PARAMS) and "columns" not in signature.parameters
    for param in signature.parameters.values():  # help is plain text: "[default: x]" must not become markup
        info = param.default
        if getattr(info, "help", None) and not getattr(info, "_tamis_escaped", False):
            info.help = escape(info.help)
            info._tamis_escaped = True
    takes_engine = "engine" in signature.parameters and signature.parameters["engine"].default is EngineOptions
    params = [p for name, p in signature.parameters.items() if not (takes_engine and name == "engine")]
    extra = _engine_parameters() if takes_engine else []
    if takes_engine:  # typer reads types from the annotations: the engine's are its options' now
        wrapper.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != "engine"} | {
            p.name: p.annotation for p in extra}
    if add_columns:
        extra.append(inspect.Parameter("columns", inspect.Parameter.KEYWORD_ONLY, default=ColumnsOpt,
                                       annotation=Optional[str]))
    if "config" not in signature.parameters:
        extra.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=ConfigOpt,
                                       annotation=Optional[Path]))
    if extra:
        wrapper.__signature__ = signature.replace(parameters=params + extra)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def workspace_from(path: Optional[str]):
    from tamis.store import Workspace

    return Workspace(path)


DryRunOpt = typer.Option(False, "--dry-run", help="Print the model calls, tokens and estimated time (from this "
                         "workspace's measured throughput) and exit; nothing is run and nothing is written.")
PlanJsonOpt = typer.Option(False, "--json", help="With --dry-run: print the plan as JSON.")
CalibrateOpt = typer.Option(False, "--calibrate", help="With --dry-run: first time a few of the calls for real (they "
                            "go to the workspace's call cache), so the estimate rests on a fresh measurement.")


def show_plan(make_plan: Callable[[Any], Any], workspace: Optional[str], as_json: bool, calibrate: bool) -> None:
    """--dry-run: the command's plan (``tamis.plan``), optionally calibrated, printed; nothing else happens."""
    from tamis import plan as planning

    ws = workspace_from(workspace)
    plan = make_plan(ws)
    if calibrate:
        planning.calibrate(plan, ws)
    planning.show(plan, ws, as_json)


def check_plan_flags(dry_run: bool, as_json: bool, calibrate: bool) -> None:
    if (as_json or calibrate) and not dry_run:
        from tamis.errors import ConfigError

        raise ConfigError("--json and --calibrate go with --dry-run")


def _version(value: bool) -> None:
    if value:
        out.print(f"tamis {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the libraries' own warnings, logs and "
                                                                "progress bars (hidden by default)."),
) -> None:
    """tamis: generate, measure, decide, fine-tune and evaluate: data curation you can prove."""
    from tamis.progress import set_verbose

    set_verbose(verbose)




def print_results(rows: list[dict[str, Any]], title: str) -> None:
    """A study's results table (variants x models, every metric with its CI), as the report shows it."""
    from rich.table import Table

    from tamis.report.experiment import aggregate, display_rows, metric_names

    display = display_rows(aggregate(rows), metric_names(rows))
    table = Table(*(display[0] if display else ["variant"]), title=title)
    for row in display:
        table.add_row(*row.values())
    out.print(table)


def opt(cls: type, name: str, *flags: str, required: bool = False, **overrides: Any) -> Any:
    """A typer option built from a config class's field: its default, help, range and choices are
    declared once, in the library (``tamis.settings.setting``)."""
    from tamis.settings import setting_info

    default, help_text, meta = setting_info(cls, name)
    if required:
        default = ...
    extra = []
    if meta.get("choices"):
        extra.append("one of " + ", ".join(meta["choices"]))
    if meta.get("range"):
        lo, hi = meta["range"]
        extra.append(f"range {'-inf' if lo is None else lo} to {'inf' if hi is None else hi}")
    if extra:
        help_text = f"{help_text} ({'; '.join(extra)})"
    if isinstance(default, tuple) and default is not ...:
        # an empty tuple stays a list: "" is no valid default for a list option (train sft --report-to)
        default = ",".join(default) if default and all(isinstance(x, str) for x in default) else list(default)
    callback = _check_setting(name, meta) if (meta.get("choices") or meta.get("range")) else None
    if name in MODEL_SPEC_SETTINGS:
        callback = _check_model_spec
    return typer.Option(default, *flags, help=help_text, callback=callback, **overrides)


def _check_setting(name: str, meta: dict[str, Any]) -> Callable[[Any], Any]:
    """Check a value at parse time against its declared range/choices ('did you mean ...?')."""

    def check(value: Any) -> Any:
        from tamis.errors import ConfigError
        from tamis.settings import check_range

        try:
            check_range("", name, value, meta)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc)) from None
        return value

    return check
