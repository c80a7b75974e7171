"""What every benchmark does with its result at the end: the table, the JSON (with the arguments it ran with) and
the PNG plot."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_results(result: dict[str, Any], args: argparse.Namespace, print_table: Callable[[dict[str, Any]], None],
                 plot: Callable[[dict[str, Any], Path], None]) -> None:
    """Record ``args`` in ``result``, print its table, write ``args.json`` and draw ``args.png``."""
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print_table(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    plot(result, args.png)
    print(f"\nJSON {args.json}\nplot {args.png}")
