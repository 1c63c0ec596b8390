"""The commands about the machine and the setup: `info` (where state lives, the models, the CPU
and what runs on it) and `calibrate` (measure again which engine and kernels are fastest)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from assistant.cli import command
from assistant.cli.command import (
    DebugOption,
    HomeOption,
    JsonOption,
    ModelOption,
    handle_errors,
    load_config,
)
from assistant.config import Config, display_url
from assistant.index.database import backend
from assistant.index.home import Home
from assistant.models import served_model_name


@handle_errors
def info_command(
    home: HomeOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show where state lives, what is ingested, and which models and device are used."""
    from assistant.calibration import cpu_summary
    from assistant.devices import choose_device
    from assistant.embed.embedder import choose_backend
    from assistant.llm import loader as engines

    config = load_config(home, debug=debug, model=model)
    # A model on a server runs on no device here and uses none of the torch engine's kernels.
    remote = served_model_name(config.model) is not None
    assistant_home = Home(config)
    check = assistant_home.check()  # the database's own check, and the index against it
    store = assistant_home.store if check.database == "ok" else None
    index_path = config.index_path
    details: dict[str, Any] = {
        "home": str(config.home),
        "database": display_url(config.database),
        "backend": backend(config.database),
        "database_check": check.database,
        "writable": assistant_home.writable(),
        "index": str(index_path),
        "index_bytes": index_path.stat().st_size if index_path.exists() else 0,
        "index_state": check.index,
        **(store.counts() if store is not None else {}),
        "embedding_model": config.embedding_model,
        "embedding_backend": choose_backend(config.embedding_backend, choose_device(config.device)),
        "language_model": config.model,
        **({} if remote else {"device": choose_device(config.device)}),
        "cpu": cpu_summary(),
        "engine": engines.describe(config),
        **({} if remote else _kernel_choices(config)),
        "retrieval_mode": config.retrieval_mode,
    }
    if store is not None:
        details |= {"lexical_search": store.has_lexical, "migrations": store.applied_migrations()}
    # --debug is a flag only when given (its default, False, is not a choice of the user's).
    origins = Config.origins(home=home, debug=debug or None, model=model)
    config_file = str(config.config_file) if config.config_file.is_file() else None
    if as_json:
        settings = {
            item.name: {"value": item.value, "source": origins[item.name]}
            for item in config.settings()
        }
        print(
            json.dumps(
                details
                | {"config_file": config_file, "settings": settings, "problems": check.problems},
                indent=2,
            )
        )
    else:
        changed = [
            f"{item.name}={item.value} ({origins[item.name]})"
            for item in config.settings()
            if origins[item.name] != "default"
        ]
        details |= {
            "config_file": config_file or f"none ({config.config_file})",
            "settings": ", ".join(changed) or "all at their defaults",
        }
        table = Table(show_header=False, show_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in details.items():
            table.add_row(key, escape(", ".join(value) if isinstance(value, list) else str(value)))
        command.console.print(table)
        for problem in check.problems:
            command.errors.print(f"[bold red]problem:[/] {escape(problem)}")
    if check.problems:
        raise typer.Exit(1)


@handle_errors
def calibrate_command(
    home: HomeOption = None, as_json: JsonOption = False, debug: DebugOption = False
) -> None:
    """Measure again which engine and kernels are fastest on this CPU (keep the machine quiet)."""
    from assistant.llm import loader as engines

    config = load_config(home, debug=debug)
    with command.busy("measuring this CPU…"):
        engines.measure_again(config)
    details = {"engine": engines.describe(config), **_kernel_choices(config)}
    if as_json:
        print(json.dumps(details, indent=2))
        return
    for key, value in details.items():
        command.console.print(f"[bold]{key}[/] {escape(value)}")


def _kernel_choices(config: Config) -> dict[str, str]:
    """What the torch engine runs on this CPU and the numbers behind it (`kernel_plan`, read
    from its cache by `plan_cache` without importing torch), and whether the C attention kernel
    can run here at all (and if not, why)."""
    from assistant.devices import choose_device
    from assistant.llm.plan_cache import attention_kernel_reason, cached_choices, describe

    if choose_device(config.device) != "cpu":
        return {}
    reason = attention_kernel_reason(config.models_dir / "kernels")
    kernel = {"attention_kernel": "available" if reason is None else f"unavailable: {reason}"}
    choices = cached_choices(config)
    if choices is None:
        return {"torch_kernels": "measured at the first question (once per CPU)", **kernel}
    return {**{f"torch_{name}": line for name, line in describe(choices).items()}, **kernel}
