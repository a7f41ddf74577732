"""What alimb's commands share around Hydra: composition errors in one line, and parts chosen by name.

A part (`alimb.options.Part`) chosen by name and then configured in the same command,
`acquisition.within=coreset acquisition.within.lazy=false`, needs the choice made in the defaults list
(`acquisition@acquisition.within=coreset`), or the second override would land on a string: `rewrite_parts` turns
the first into the second, as a user of Hydra would write it, whenever a later override reaches inside the part.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

NOISE = ("full_key:", "object_type=", "reference_type=", "Set the environment variable HYDRA_FULL_ERROR")
NAMES = re.compile(r"^[A-Za-z_][\w-]*(,[A-Za-z_][\w-]*)*$")  # an option's name, or a sweep over names


def one_line(err: BaseException) -> str:
    """A composition error (unknown key or option, bad override, bad YAML) as one line, without Hydra's noise."""
    parts = [str(err), str(err.__cause__ or "")]
    lines = [ln.strip() for part in parts for ln in part.splitlines() if ln.strip() and not ln.strip().startswith(NOISE)]
    lines = lines[:next((i for i, ln in enumerate(lines) if ln.startswith("Config search path")), len(lines))]
    text = "; ".join(ln.rstrip(".") for ln in dict.fromkeys(lines))  # in order, without repeats
    text = text.replace(":;", ":").replace("Available options in", "available options in")
    struct = re.search(r"Could not override '([^']+)'.*Key '([^']+)' is not in struct", text)
    if struct:  # Hydra's advice (+KEY=...) would only meet validation's "unknown config key"
        key, inner = struct.groups()
        where = key if inner in key.split(".") else f"{key}.{inner}"
        return (f"unknown config key {where} (no option of what is chosen there); `alimb-options` with the same "
                "choices lists the options")
    lexer = re.search(r"LexerNoViableAltException: ([^;]+)", text)
    if lexer:
        return f"cannot read the override {lexer.group(1)!r}; quote its value, e.g. 'cache_dir=\"~/x\"'"
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        from alimb.sweep import choices

        return f"no {missing.group(1)} option named {missing.group(2)!r}; choose one of {choices(missing.group(1))}"
    if "No match in the defaults list" in text:
        key = re.search(r"'([\w.]+@[\w.]+)'", text)
        if key:
            text += f"; add it with +{key.group(1)}=NAME"
    return text


@functools.cache
def part_groups() -> dict[tuple[str, str], str]:
    """{('one', option) | ('many', option): group} of every part declared by a target of alimb's config tree."""
    from alimb.declarations import parts, target_callable

    from importlib import resources

    root = Path(str(resources.files("alimb.conf")))
    targets = {m for f in root.rglob("*.yaml") for m in re.findall(r"_target_:\s*(alimb\.[\w.]+)", f.read_text())}
    groups: dict[tuple[str, str], str] = {}
    for target in sorted(targets):
        try:
            declared_parts = parts(target_callable(target))
        except Exception:  # noqa: BLE001 - validation names a target that cannot be read
            continue
        for name, (part, kind) in declared_parts.items():
            groups[(kind, name)] = part.group
    return groups


def _check_shadowing(folder: Path) -> None:
    """A file of a user's folder with the name of one of alimb's own would be shadowed by it: one line instead."""
    from importlib import resources

    from alimb.errors import UserError

    ours = Path(str(resources.files("alimb.conf")))
    for path in sorted(folder.rglob("*.yaml")):
        relative = path.relative_to(folder)
        if (ours / relative).is_file():
            raise UserError(f"{path} has the name of alimb's own {relative.with_suffix('').as_posix()}, which is found "
                            f"first; give yours another name (e.g. {relative.stem}_mine.yaml) and choose that")


FLAGS = {"--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--resolve", "--package", "-p", "--run", "-r",
         "--multirun", "-m", "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
         "-cd", "--experimental-rerun", "--info", "-i"}  # Hydra's command-line flags


VALUED = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
          "--experimental-rerun"}  # flags whose value is the next argument (--info's is optional: one of its words)
INFO = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def flags_first(args: list[str]) -> list[str]:
    """The flags (with their values) before the overrides, whatever the order typed: argparse cannot take
    `KEY=V -m KEY2=V2` (it reads one run of overrides)."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            if (a in VALUED or (a in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in INFO)) \
                    and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(a)
        i += 1
    return flags + overrides


def check_flags(args: list[str]) -> None:
    """An unknown flag is one line (argparse would print its usage block first)."""
    from alimb.errors import UserError

    for a in flags_first(args):
        if a.startswith("-") and a.split("=", 1)[0] not in FLAGS:
            raise UserError(f"unknown flag {a}; `alimb --help` lists them (overrides are KEY=VALUE, without a dash)")
    check_repeats(args)


def check_repeats(args: list[str]) -> None:
    """One key given twice is one line: Hydra would take the last, while the run's directory is named the same
    whichever comes last (two runs, one directory)."""
    from alimb.errors import UserError

    seen: dict[str, str] = {}
    for a in flags_first(args):
        if a.startswith("-") or "=" not in a:
            continue
        key, _, value = a.partition("=")
        key = key.lstrip("+~")
        if key in seen and seen[key] != value:
            raise UserError(f"{key} is given twice ({seen[key]} and {value}); give it once")
        seen[key] = value


def config_dirs(args: list[str]) -> list[str]:
    """The command line with `--config-dir DIR` (`-cd DIR`, `--config-dir=DIR`) and `file://` entries of
    `hydra.searchpath` read by alimb's own config source (`alimbdir://`), so a user's YAML files get their declared
    options filled as alimb's do. A folder that does not exist is one line."""
    from alimb.errors import UserError

    out, dirs, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            out.append(a)
        i += 1
    paths = []
    for d in dirs:
        folder = Path(d).expanduser().absolute()
        if not folder.is_dir():
            raise UserError(f"--config-dir {d}: no such folder; name a folder of YAML files (e.g. myconf with "
                            "myconf/experiment/mine.yaml)")
        _check_shadowing(folder)
        paths.append(f"alimbdir://{folder}")
    for j, a in enumerate(out):
        if a.split("=", 1)[0].lstrip("+") == "hydra.searchpath" and "=" in a:
            key, value = a.split("=", 1)
            entries = [e.strip().strip("'\"") for e in value.strip().strip("[]").split(",") if e.strip()]
            entries = [f"alimbdir://{Path(e.removeprefix('file://')).absolute()}" if e.startswith("file://") else e
                       for e in entries]
            out[j] = f"{key}=[{','.join(entries + paths)}]"
            return out
    if not paths:
        return out
    first = next((j for j, a in enumerate(out) if "=" in a and not a.startswith("-")), len(out))
    return [*out[:first], f"hydra.searchpath=[{','.join(paths)}]", *out[first:]]  # with the other overrides


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def reach_into_swept_groups(args: list[str]) -> list[str]:
    """In a sweep over a group's options (`-m acquisition=dropquery,alfamix acquisition.kmeans_iterations=50`), Hydra
    composes the sweep's own config with the group's default, which may lack the option: `++` lets each job's
    composition set it (a job whose choice lacks it then fails alone, named at the end, as any bad job)."""
    from importlib import resources

    if not any(a in ("-m", "--multirun") for a in args):
        return args
    root = Path(str(resources.files("alimb.conf")))
    swept = set()
    for a in args:
        key, _, value = a.partition("=")
        if a.startswith(("-", "+", "~")) or "," not in value or not NAMES.match(value):
            continue
        group, _, package = key.partition("@")
        if (root / group).is_dir():
            swept.add(package or group)
    out = []
    for a in args:
        key = a.split("=", 1)[0].lstrip("+")
        if "=" in a and not a.startswith(("-", "~", "++")) and any(key.startswith(p + ".") for p in swept):
            a = "++" + a.lstrip("+")
        out.append(a)
    return out


def rewrite_parts(args: list[str]) -> list[str]:
    """The command line's overrides (each checked to name a key: `=3` is one line, as Hydra would not say) with each part chosen by name and configured further (`K=NAME` and `K.x=...`)
    turned into the defaults-list choice `GROUP@K=NAME`; `+K.x=...` then becomes `++K.x=...` (the option exists)."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    from alimb.errors import UserError

    for a in overrides:
        if not _key(a).split("@")[-1].strip():
            raise UserError(f"the override {a!r} names no key; write KEY=VALUE, e.g. seed=3")
    for a in overrides:
        key, value = a.split("=", 1)
        *parent, last = key.lstrip("+~").split(".")
        slot = part_groups().get(("one", last)) or (part_groups().get(("many", parent[-1])) if parent else None)
        named = re.search(r"[{,]\s*name\s*:\s*([\w.-]*)", value) if value.lstrip().startswith("{") else None
        if slot and named:
            bare = key.lstrip("+~")
            raise UserError(f"{key}={value} renames the part, not what runs there: choose it by name, "
                            f"{bare}={named.group(1) or 'NAME'} (and {bare}.OPTION=VALUE for its options)")
    chosen = {}
    for a in overrides:
        key, value = a.split("=", 1)
        if a[0] in "+~" or "@" in key or key.startswith("hydra.") or "." not in key or not NAMES.match(value):
            continue
        if any(_key(b).startswith(key + ".") for b in overrides):
            *parent, last = key.split(".")
            group = part_groups().get(("one", last)) or (part_groups().get(("many", parent[-1])) if parent else None)
            if group is not None:
                chosen[key] = group
    if not chosen:
        return list(args)
    out = []
    for a in args:
        key = a.split("=", 1)[0]
        if key in chosen:
            out.append(f"{chosen[key]}@{a}")
        elif a.startswith("+") and not a.startswith("++") and any(_key(a).startswith(k + ".") for k in chosen):
            out.append("+" + a)
        else:
            out.append(a)
    return out
