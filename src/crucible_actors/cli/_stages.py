"""``crucible-actors stages [--name NAME]``: list registered stages and their option schemas.

Output follows the reference's ``mix crucible.stages``.
"""

from __future__ import annotations

import difflib
import json
import sys
from typing import TYPE_CHECKING, Any

from .._core._encoding import sanitize
from .._core._ir import stage_ref
from .._core._registry import Registry
from .._core._schema import format_type_spec

if TYPE_CHECKING:
    import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stages`` command."""
    p = sub.add_parser("stages", help="list registered stages and their options")
    p.add_argument("-n", "--name", help="show the full schema of one stage")
    p.add_argument("--json", action="store_true", help="print the schemas as JSON")
    p.set_defaults(func=cmd_stages)


def _keys(keys: Any) -> str:
    return ", ".join(str(k) for k in keys) if keys else "(none)"


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(sanitize({k: v for k, v in schema.items() if k != "types"}))
    out["types"] = {k: format_type_spec(v) for k, v in schema.get("types", {}).items()}
    return out


def cmd_stages(args: argparse.Namespace, registry: Registry | None = None) -> int:
    """Print the stage list or one stage's detail; 2 for an unknown name."""
    reg = registry if registry is not None else Registry.default()
    out = sys.stdout
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
            return 0
        types = schema.get("types", {})
        defaults = schema.get("defaults") or {}
        print(f"Stage: {args.name}", file=out)
        print(f"Module: {stage_ref(stage_obj)}", file=out)
        print("Description:", file=out)
        print(f"  {schema.get('description', '')}", file=out)
        for title, keys in (
            ("Required Options", schema.get("required", [])),
            ("Optional Options", schema.get("optional", [])),
        ):
            if not keys:
                print(f"{title}: (none)", file=out)
                continue
            print(f"{title}:", file=out)
            width = max(len(str(k)) for k in keys)
            spec_width = max(len(format_type_spec(types.get(k, "any"))) for k in keys)
            for key in keys:
                spec = format_type_spec(types.get(key, "any"))
                line = f"  {key!s:<{width}}  {spec:<{spec_width}}"
                if key in defaults:
                    line += f"  default: {json.dumps(sanitize(defaults[key]))}"
                print(line.rstrip(), file=out)
        return 0
    triples = reg.schemas()
    if args.json:
        payload = [
            {"name": name, "module": stage_ref(obj), "schema": _json_schema(schema)}
            for name, obj, schema in triples
        ]
        print(json.dumps(payload, indent=2, sort_keys=True), file=out)
        return 0
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
    return 0
