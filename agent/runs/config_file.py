"""`--config kopt.toml` for optimize, bench and train: sections checked against the pydantic
models (or dataclasses) that already validate those knobs, flags over the file, and the
resolved config kept in the run dir so `--resume` continues with what the run started with.

A config is a dict of sections ({"search": {...}, "eval": {...}}); `resolve` layers defaults,
the file and the flags given on the command line, and reports an unknown section or key in
one line that names it.
"""
from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Any

from kopt.agent.errors import UserInputError

RESOLVED_FILE = "config.json"


def load(path: Path) -> dict:
    """A TOML (or a resolved config.json) file as {section: {key: value}}; one-line errors."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UserInputError(f"--config {path}: cannot read it ({e.strerror or e})") from None
    if Path(path).suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserInputError(f"--config {path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UserInputError(f"--config {path}: not valid TOML ({e})") from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise UserInputError(f"--config {path}: {bad[0]!r} is not a section; put keys under [section] headers")
    return data


def field_names(schema: type | tuple) -> list[str]:
    """The settable names of a pydantic model or a dataclass (or the names themselves)."""
    if isinstance(schema, (tuple, list)):
        return list(schema)
    if dataclasses.is_dataclass(schema):
        return [f.name for f in dataclasses.fields(schema)]
    return list(schema.model_fields)


def check_keys(data: dict, schemas: dict[str, type], where: str, exclude: dict[str, set] | None = None) -> None:
    """Every section is one of `schemas` and every key one of its model's fields."""
    exclude = exclude or {}
    for section, values in data.items():
        if section not in schemas:
            raise UserInputError(f"{where}: unknown section [{section}] (known: {', '.join(sorted(schemas))})")
        known = [n for n in field_names(schemas[section]) if n not in exclude.get(section, set())]
        for key in values:
            if key not in known:
                raise UserInputError(f"{where}: unknown key {key!r} in [{section}] (known: {', '.join(known)})")


def given_flags(ctx, mapping: dict[str, str]) -> dict[str, Any]:
    """{"section.key": value} for the flags typed on the command line (not their defaults)."""

    out = {}
    for param, dotted in mapping.items():
        source = ctx.get_parameter_source(param)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            v = ctx.params[param]
            v = v.value if isinstance(v, Enum) else v  # a choice flag (cli/choices.py) as its plain value
            out[dotted] = str(v.resolve()) if isinstance(v, Path) else v  # a path must survive a resume elsewhere
    return out


def flag_name(dotted: str, mapping: dict[str, str]) -> str:
    """The command-line spelling of a config key, for messages ("--budget" for search.budget)."""
    for param, d in mapping.items():
        if d == dotted:
            return "--" + param.replace("_", "-")
    return dotted


def layer(base: dict, data: dict) -> dict:
    """`data`'s sections over `base`'s, key by key."""
    out = {s: dict(v) for s, v in base.items()}
    for section, values in data.items():
        out.setdefault(section, {}).update(values)
    return out


def dotted_to_sections(flags: dict[str, Any]) -> dict:
    out: dict[str, dict] = {}
    for dotted, v in flags.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = v
    return out


def changed_on_resume(stored: dict, wanted: dict, mapping: dict[str, str]) -> list[str]:
    """'--budget 20 (the run has 12)' for each value of `wanted` that differs from the stored run's."""
    out = []
    for section, values in wanted.items():
        for key, v in values.items():
            old = stored.get(section, {}).get(key)
            if _norm(old) != _norm(v):
                out.append(f"{flag_name(f'{section}.{key}', mapping)} {v} (the run has {old})")
    return out


def _norm(v):
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else v


def resolve(stored: dict | None, file_data: dict, flags: dict[str, Any], mapping: dict[str, str],
            override: bool, run_dir: Path | None, defaults: dict | None = None) -> dict:
    """The sections to build the config from: `defaults` (a command's own, where they differ from
    the models'), the file, the flags. A resumed run keeps its stored config; a value the file or
    the flags change is an error unless `override` says it is meant."""
    wanted = layer(file_data, dotted_to_sections(flags))
    if stored is None:
        return layer(defaults or {}, wanted)
    changes = changed_on_resume(stored, wanted, mapping)
    if changes and not override:
        raise UserInputError(f"--resume: {'; '.join(changes)} differs from {run_dir}/{RESOLVED_FILE}; "
                             f"add --override to change it, or leave the flag out")
    return layer(stored, wanted)


def stored_config(run_dir: Path | None) -> dict | None:
    """A run dir's resolved config, None when it has none (a run from before config files)."""
    path = Path(run_dir) / RESOLVED_FILE if run_dir else None
    if path is None or not path.exists():
        return None
    return load(path)


def write(run_dir: Path, sections: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESOLVED_FILE
    path.write_text(json.dumps(sections, indent=2, default=str) + "\n")
    return path


def build(schema: type, values: dict, where: str):
    """An instance of a pydantic model or a dataclass from a section, its field types checked
    (a dataclass's own __post_init__ checks still run); a bad value is one line naming it."""
    from pydantic import TypeAdapter, ValidationError

    try:
        if dataclasses.is_dataclass(schema):
            return TypeAdapter(schema).validate_python(values)
        return schema(**values)
    except (ValidationError, TypeError, ValueError) as e:
        raise one_line(e, where) from None


def one_line(e: Exception, where: str) -> UserInputError:
    """A pydantic/ValueError from building a section as one line naming the key."""
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        if not loc:  # a check across fields (a dataclass's __post_init__): its own message says it all
            return UserInputError(f"{where}: {msg}")
        return UserInputError(f"{where}: {loc}: {msg} (got {first.get('input')!r})")
    return UserInputError(f"{where}: {str(e).splitlines()[0]}")
