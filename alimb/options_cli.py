"""`alimb-options [--config-dir DIR] [OVERRIDE ...]`: every option of every node the composed config builds, with its
type, value, default and one line of doc, e.g. `alimb-options scheme=switch acquisition=direct`.

The overrides are composed and checked as `alimb` checks them (parts chosen by name expanded, every value
validated): a bad override or an unknown choice is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel

from alimb.declarations import declared_by, declared_by_model, describe


def listing(cfg: dict) -> list[str]:
    """The lines of the listing for a composed config (a plain container)."""
    from alimb.schema import Top

    lines: list[str] = []

    def walk(node: Any, path: str, model: Any = None) -> None:
        if isinstance(node, dict):
            options = declared_by(node.get("_target_")) or (declared_by_model(model) if model else {})
            if options or isinstance(node.get("_target_"), str):
                lines.append(f"{path or 'top level'} ({node.get('_target_') or f'alimb.schema.{model.__name__}'}):")
                lines.extend(describe(options, node) or ["  (no options)"])
            for key, value in node.items():
                sub = options[key].annotation if key in options else None
                walk(value, f"{path}.{key}" if path else key,
                     sub if isinstance(sub, type) and issubclass(sub, BaseModel) else None)

    walk(cfg, "", Top)
    return lines


def main(argv: list[str] | None = None) -> int:
    """List the options of the config the overrides compose; one line and 2 on bad input."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from alimb.cli import check_repeats, config_dirs, one_line, rewrite_parts
    from alimb.config import expand_parts
    from alimb.errors import UserError
    from alimb.schema import validate

    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    try:
        args = config_dirs(args)
        flag = next((a for a in args if a.startswith("-")), None)
        if flag is not None:
            raise UserError(f"unknown flag {flag}; alimb-options takes overrides (KEY=VALUE) and --config-dir DIR")
        check_repeats(args)
        overrides = rewrite_parts(args)
        with initialize_config_module("alimb.conf", version_base="1.3"):
            cfg = compose("config", overrides=overrides)
            expand_parts(cfg)
        validate(cfg, complete=False)
        lines = listing(OmegaConf.to_container(cfg, resolve=False))
    except (HydraException, OmegaConfBaseException) as err:
        print(f"alimb-options: error: {one_line(err)}", file=sys.stderr)
        return 2
    except UserError as err:
        print(f"alimb-options: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        print("\n".join(lines))
    except BrokenPipeError:  # `alimb-options | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
