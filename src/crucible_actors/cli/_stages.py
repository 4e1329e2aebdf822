"""``crucible-actors stages [--name NAME]``: list registered stages and their option schemas.

Piped, the output follows CrucibleFramework's ``mix crucible.stages``; on a terminal it is a
rich table. ``--name`` shows one row per option: its type, whether it is required, its
default, the values it allows and what it does, all from the stage's schema. An
option's description comes from ``msgspec.Meta(description=...)`` on the field of the
stage's ``Options`` Struct, or, for a stage described by a dict, from an
``option_descriptions`` mapping in its schema (kept under ``__extensions__``).
``--json`` prints the schemas unchanged.
"""

from __future__ import annotations

import difflib
import json
import sys
from typing import TYPE_CHECKING, Any

from .._core import Registry, stage_ref, to_json_safe
from ..schema import format_type_spec
from ._console import fancy, stdout_console

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

__all__ = [
    "OptionRow",
    "allowed_values",
    "option_descriptions",
    "option_rows",
    "pipeline_rows",
    "register",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stages`` command."""
    p = sub.add_parser("stages", help="list registered stages and their options")
    p.add_argument("-n", "--name", help="show the full schema of one stage")
    p.add_argument("--json", action="store_true", help="print the schemas as JSON")
    p.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="list the stages of an experiment file: where each runs (isolation, pool, "
        "resources) and its supervision policy",
    )
    p.set_defaults(func=cmd_stages)


def pipeline_rows(path: str) -> list[dict[str, Any]]:
    """Return one row per stage of the experiment file ``path``: name, where it runs, policy.

    Raises:
        InvalidExperiment: the file does not load (the message names the file and field).
    """
    from .._core import load_experiment

    exp = load_experiment(path)
    rows: list[dict[str, Any]] = []
    for index, sd in enumerate(exp.pipeline, 1):
        ref = sd.stage if isinstance(sd.stage, str) or sd.stage is None else stage_ref(sd.stage)
        rows.append(
            {
                "index": index,
                "label": sd.label,
                "stage": ref or sd.name,
                "isolation": sd.isolation,
                "pool": sd.pool,
                "resources": dict(sd.resources),
                "timeout": sd.timeout,
                "restart": sd.restart,
                "enabled": sd.enabled,
            }
        )
    return rows


def _pipeline_line(row: dict[str, Any]) -> str:
    parts = [f"{row['index']}. {row['label']}"]
    if row["stage"] != row["label"]:
        parts.append(f"({row['stage']})")
    parts.append(f"isolation={row['isolation']}")
    if row["pool"] != 1:
        parts.append(f"pool={row['pool']}")
    if row["resources"]:
        parts.append(
            "resources: " + " ".join(f"{k}={v}" for k, v in sorted(row["resources"].items()))
        )
    if row["timeout"] is not None:
        parts.append(f"timeout={row['timeout']}s")
    parts.append(f"restart={row['restart']}")
    if not row["enabled"]:
        parts.append("(disabled)")
    return "  ".join(parts)


def _keys(keys: Any) -> str:
    return ", ".join(str(k) for k in keys) if keys else "(none)"


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(to_json_safe({k: v for k, v in schema.items() if k != "types"}))
    out["types"] = {k: format_type_spec(v) for k, v in schema.get("types", {}).items()}
    return out


# -- what an option is -----------------------------------------------------------------


def _composite(spec: object) -> tuple[str, list[object]] | None:
    if isinstance(spec, tuple | list) and spec and isinstance(spec[0], str):
        return spec[0], list(spec[1:])
    return None


def allowed_values(spec: object) -> list[object] | None:
    """Return the values an option of type ``spec`` allows, or None when it is open.

    An enum gives its values; a list of an enum the values of its items; a union the
    values of its members when every member is an enum (``None`` included when it is
    one of them).
    """
    match _composite(spec):
        case ("enum", [list() as values]):
            return list(values)
        case ("list", [inner]):
            return allowed_values(inner)
        case ("union", [list() as members]):
            found: list[object] = []
            for member in members:
                member_values = allowed_values(member)
                if member_values is None:
                    return None
                found += [v for v in member_values if v not in found]
            return found
    return None


def _type_text(spec: object) -> str:
    """Render ``spec`` with enums as plain ``enum`` (their values have a column of their own)."""
    match _composite(spec):
        case ("enum", _):
            return "enum"
        case ("list", [inner]):
            return f"list[{_type_text(inner)}]"
        case ("map", [key_spec, value_spec]):
            return f"map[{_type_text(key_spec)}, {_type_text(value_spec)}]"
        case ("union", [list() as members]):
            texts = list(dict.fromkeys(_type_text(m) for m in members))
            return texts[0] if len(texts) == 1 else "union[" + ", ".join(texts) + "]"
    return format_type_spec(spec)


def option_descriptions(stage_obj: object, schema: dict[str, Any]) -> dict[str, str]:
    """Return ``{option: description}`` from the schema and the stage's ``Options`` Struct.

    ``__extensions__["option_descriptions"]`` (a dict schema's own) comes first; the
    ``msgspec.Meta(description=...)`` of an ``Options`` field fills in the rest.
    """
    out: dict[str, str] = {}
    ext = schema.get("__extensions__") or {}
    given = ext.get("option_descriptions") if isinstance(ext, dict) else None
    if isinstance(given, dict):
        out.update({str(k): str(v) for k, v in given.items() if isinstance(v, str)})
    options = getattr(stage_obj, "Options", None)
    if options is not None:
        import msgspec.inspect

        try:
            info = msgspec.inspect.type_info(options)
        except Exception:  # a field type msgspec cannot describe: no Meta to read
            return out
        for field in getattr(info, "fields", ()):
            meta = field.type
            if isinstance(meta, msgspec.inspect.Metadata):
                text = (meta.extra_json_schema or {}).get("description")
                if isinstance(text, str):
                    out.setdefault(field.encode_name, text)
    return out


class OptionRow:
    """One option of a stage, as ``stages --name`` shows it."""

    __slots__ = ("allowed", "default", "description", "has_default", "name", "required", "type")

    def __init__(
        self,
        name: str,
        type_: str,
        *,
        required: bool,
        has_default: bool,
        default: object,
        allowed: list[object] | None,
        description: str,
    ) -> None:
        self.name = name
        self.type = type_
        self.required = required
        self.has_default = has_default
        self.default = default
        self.allowed = allowed
        self.description = description

    @property
    def default_text(self) -> str:
        """The default as JSON, or ``""`` when the option has none."""
        return json.dumps(to_json_safe(self.default)) if self.has_default else ""

    @property
    def allowed_text(self) -> str:
        """The allowed values as JSON, comma-separated, or ``""`` when any value goes."""
        if self.allowed is None:
            return ""
        return ", ".join(json.dumps(to_json_safe(v)) for v in self.allowed)


def option_rows(stage_obj: object, schema: dict[str, Any]) -> list[OptionRow]:
    """Return the required options, then the optional ones, in schema order."""
    types = schema.get("types", {})
    defaults = schema.get("defaults") or {}
    docs = option_descriptions(stage_obj, schema)
    rows = []
    for required, keys in ((True, schema.get("required", [])), (False, schema.get("optional", []))):
        for key in keys:
            spec = types.get(key, "any")
            allowed = allowed_values(spec)
            rows.append(
                OptionRow(
                    str(key),
                    _type_text(spec) if allowed is not None else format_type_spec(spec),
                    required=required,
                    has_default=key in defaults,
                    default=defaults.get(key),
                    allowed=allowed,
                    description=docs.get(str(key), ""),
                )
            )
    return rows


# -- output ----------------------------------------------------------------------------


def _print_detail_plain(name: str, stage_obj: object, schema: dict[str, Any]) -> None:
    out = sys.stdout
    rows = option_rows(stage_obj, schema)
    print(f"Stage: {name}", file=out)
    print(f"Module: {stage_ref(stage_obj)}", file=out)
    print("Description:", file=out)
    print(f"  {schema.get('description', '')}", file=out)
    for title, required in (("Required Options", True), ("Optional Options", False)):
        group = [r for r in rows if r.required is required]
        if not group:
            print(f"{title}: (none)", file=out)
            continue
        print(f"{title}:", file=out)
        width = max(len(r.name) for r in group)
        spec_width = max(len(r.type) for r in group)
        for r in group:
            line = f"  {r.name:<{width}}  {r.type:<{spec_width}}"
            if r.has_default:
                line += f"  default: {r.default_text}"
            if r.allowed is not None:
                line += f"  one of: {r.allowed_text}"
            print(line.rstrip(), file=out)
            if r.description:
                print(f"      {r.description}", file=out)


def _print_detail_rich(
    console: Console, name: str, stage_obj: object, schema: dict[str, Any]
) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(
        Text.assemble(("Stage ", "dim"), (name, "bold"), ("  ", ""), stage_ref(stage_obj))
    )
    console.print(Text(str(schema.get("description", ""))))
    rows = option_rows(stage_obj, schema)
    if not rows:
        console.print(Text("no options", style="dim"))
        return
    table = Table(header_style="bold", show_lines=False)
    table.add_column("Option", style="bold")
    table.add_column("Type")
    table.add_column("Required")
    table.add_column("Default", overflow="fold")
    table.add_column("Allowed values", overflow="fold")
    table.add_column("Description", overflow="fold", ratio=1)
    for r in rows:
        table.add_row(
            Text(r.name),
            Text(r.type, style="cyan"),
            Text("yes", style="bold") if r.required else Text("no", style="dim"),
            Text(r.default_text),
            Text(r.allowed_text),
            Text(r.description),
        )
    console.print(table)


def _print_list_plain(triples: list[tuple[str, Any, dict[str, Any]]]) -> None:
    out = sys.stdout
    print("Available Stages:", file=out)
    print("=================", file=out)
    if not triples:
        print("(no stages registered)", file=out)
    for name, obj, schema in triples:
        print(f"{name} ({stage_ref(obj)})", file=out)
        print(f"  Description: {schema.get('description', '')}", file=out)
        print(f"  Required: {_keys(schema.get('required'))}", file=out)
        print(f"  Optional: {_keys(schema.get('optional'))}", file=out)
        print("", file=out)


def _print_list_rich(console: Console, triples: list[tuple[str, Any, dict[str, Any]]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Available stages", title_justify="left", header_style="bold")
    table.add_column("Stage", style="bold")
    table.add_column("Description", overflow="fold", ratio=2)
    table.add_column("Required", overflow="fold")
    table.add_column("Optional", overflow="fold", ratio=1)
    for name, _obj, schema in triples:
        table.add_row(
            Text(name),
            Text(str(schema.get("description", ""))),
            Text(", ".join(map(str, schema.get("required") or ())) or "-"),
            Text(", ".join(map(str, schema.get("optional") or ())) or "-"),
        )
    console.print(table)
    console.print(Text("crucible-actors stages --name NAME shows a stage's options", style="dim"))


def cmd_stages(args: argparse.Namespace, registry: Registry | None = None) -> int:
    """Print the stage list or one stage's detail; 2 for an unknown name."""
    reg = registry if registry is not None else Registry.default()
    out = sys.stdout
    if getattr(args, "file", None) is not None:
        from .._core import CrucibleError

        try:
            rows = pipeline_rows(args.file)
        except (CrucibleError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"file": args.file, "stages": rows}, indent=2, sort_keys=True))
        else:
            for row in rows:
                print(_pipeline_line(row), file=out)
        return 0
    console = None if args.json else stdout_console()
    rich_out = console is not None and fancy(console)
    if args.name is not None:
        if args.name not in reg:
            print(f"Unknown stage: {args.name}", file=out)
            close = difflib.get_close_matches(args.name, reg.names(), n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            print(f"{hint}Run 'crucible-actors stages' to list the available stages.", file=out)
            return 2
        stage_obj = reg.resolve(args.name)
        schema = reg.schema(args.name)
        if args.json:
            print(json.dumps(_json_schema(schema), indent=2, sort_keys=True), file=out)
        elif rich_out:
            assert console is not None
            _print_detail_rich(console, args.name, stage_obj, schema)
        else:
            _print_detail_plain(args.name, stage_obj, schema)
        return 0
    triples = reg.schemas()
    if args.json:
        payload = [
            {"name": name, "module": stage_ref(obj), "schema": _json_schema(schema)}
            for name, obj, schema in triples
        ]
        print(json.dumps(payload, indent=2, sort_keys=True), file=out)
    elif rich_out:
        assert console is not None
        _print_list_rich(console, triples)
    else:
        _print_list_plain(triples)
    return 0
