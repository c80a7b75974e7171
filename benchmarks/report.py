"""What every benchmark does with its result at the end: the table, the JSON (with the arguments it ran with) and
the PNG plot."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def save_results(result: dict[str, Any], args: argparse.Namespace, print_table: Callable[[dict[str, Any]], None],
                 plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Record ``args`` in ``result``, print its table, write ``args.json`` and draw ``args.png``."""
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    plot(result, args.png)
    print(f"\nJSON {args.json}\nplot {args.png}")


def engine_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--engine-set`` (VALUE read as YAML: numbers, booleans, strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def add_engine_set(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable ``--engine-set KEY=VALUE`` option (an ``engine:`` setting of the measured models)."""
    parser.add_argument("--engine-set", type=engine_setting, action="append", default=[], metavar="KEY=VALUE",
                        help=help_text)


def engine_settings(parser: argparse.ArgumentParser, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``--engine-set`` pairs as a dict, checked against ``EngineConfig`` (a parser error names the bad one)."""
    from pydantic import ValidationError

    from pipeline.config import EngineConfig

    settings = dict(pairs)
    try:
        EngineConfig.model_validate(settings)
    except ValidationError as exc:
        parser.error(f"--engine-set: {exc}")
    return settings
