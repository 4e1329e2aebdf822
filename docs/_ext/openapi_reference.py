"""``.. openapi-reference::``: the HTTP API, rendered from the service's OpenAPI document.

The document is the one ``GET /api/openapi.json`` serves (built by the function the
directive names), so the reference lists exactly the routes, parameters, bodies and
responses the service declares: one section per path and method, then one per schema,
with every ``$ref`` a link to its schema's section.
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

if TYPE_CHECKING:
    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)

METHODS = ("get", "post", "put", "patch", "delete")


def _schema_id(name: str) -> str:
    return nodes.make_id("schema " + name)


class OpenApiReference(SphinxDirective):
    """Render ``module:function`` (called with ``version=`` and ``token=True``)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name, _, attr = self.arguments[0].partition(":")
        build = getattr(importlib.import_module(module_name), attr)
        doc = build(version=self.config.release, token=True)
        self.schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
        routes = nodes.section(ids=[nodes.make_id("http routes")])
        routes += nodes.title(text="Routes")
        for path, operations in doc["paths"].items():
            for method in METHODS:
                if method in operations:
                    routes += self._operation(method, path, operations[method])
        schemas = nodes.section(ids=[nodes.make_id("http schemas")])
        schemas += nodes.title(text="Schemas")
        for name in sorted(self.schemas):
            schemas += self._schema_section(name, self.schemas[name])
        return [routes, schemas]

    # -- operations ---------------------------------------------------------------------

    def _operation(self, method: str, path: str, op: dict[str, Any]) -> nodes.section:
        title = f"{method.upper()} {path}"
        section = nodes.section(ids=[nodes.make_id("http " + title)])
        section += nodes.title(text=title)
        if op.get("summary"):
            section += nodes.paragraph(text=op["summary"])
        if op.get("description"):
            section += nodes.paragraph(text=op["description"])
        if op.get("security") == []:
            section += nodes.paragraph(text="Open: no token needed.")
        params = op.get("parameters", [])
        if params:
            section += nodes.rubric(text="Parameters")
            items = nodes.bullet_list()
            for param in params:
                para = nodes.paragraph()
                para += nodes.literal(text=param["name"])
                where = param.get("in", "")
                required = " required" if param.get("required") else ""
                para += nodes.Text(f" ({where}{required}): ")
                para += self._type(param.get("schema", {}))
                if param.get("description"):
                    para += nodes.Text(" - " + param["description"])
                items += nodes.list_item("", para)
            section += items
        body = op.get("requestBody")
        if body:
            section += nodes.rubric(text="Request body")
            section += self._content(body.get("content", {}), body.get("description", ""))
        section += nodes.rubric(text="Responses")
        answers = nodes.bullet_list()
        for status in sorted(op.get("responses", {})):
            answer = op["responses"][status]
            para = nodes.paragraph()
            para += nodes.strong(text=status)
            para += nodes.Text(" " + answer.get("description", ""))
            for media, content in answer.get("content", {}).items():
                para += nodes.Text("; ")
                para += nodes.literal(text=media)
                if content.get("schema"):
                    para += nodes.Text(" ")
                    para += self._type(content["schema"])
            answers += nodes.list_item("", para)
        section += answers
        return section

    def _content(self, content: dict[str, Any], description: str) -> nodes.paragraph:
        para = nodes.paragraph(text=description + (" " if description else ""))
        for index, (media, spec) in enumerate(content.items()):
            if index:
                para += nodes.Text("; ")
            para += nodes.literal(text=media)
            if spec.get("schema"):
                para += nodes.Text(" ")
                para += self._type(spec["schema"])
        return para

    # -- schemas ------------------------------------------------------------------------

    def _schema_section(self, name: str, schema: dict[str, Any]) -> nodes.section:
        section = nodes.section(ids=[_schema_id(name)])
        section += nodes.title(text=name)
        if schema.get("description"):
            section += nodes.paragraph(text=schema["description"])
        properties = schema.get("properties")
        if not properties:
            para = nodes.paragraph(text="Type: ")
            para += self._type(schema, top=True)
            section += para
            return section
        required = set(schema.get("required", []))
        items = nodes.bullet_list()
        for field, spec in properties.items():
            para = nodes.paragraph()
            para += nodes.literal(text=field)
            para += nodes.Text(" (required): " if field in required else ": ")
            para += self._type(spec)
            if "default" in spec:
                para += nodes.Text(", default ")
                para += nodes.literal(text=json.dumps(spec["default"]))
            if spec.get("description"):
                para += nodes.Text(" - " + spec["description"])
            items += nodes.list_item("", para)
        section += items
        return section

    def _type(self, schema: dict[str, Any], top: bool = False) -> nodes.inline:
        out = nodes.inline()
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in self.schemas:
                logger.warning(
                    "openapi-reference: %s refers to a schema the document does not define",
                    schema["$ref"],
                    location=self.get_location(),
                )
            out += nodes.reference("", name, refid=_schema_id(name), internal=True)
            return out
        for key, joiner in (("anyOf", " or "), ("oneOf", " or "), ("allOf", " and ")):
            if key in schema:
                for index, part in enumerate(schema[key]):
                    if index:
                        out += nodes.Text(joiner)
                    out += self._type(part)
                return out
        if "enum" in schema:
            out += nodes.Text("one of ")
            out += nodes.literal(text=", ".join(json.dumps(v) for v in schema["enum"]))
            return out
        if "const" in schema:
            out += nodes.literal(text=json.dumps(schema["const"]))
            return out
        kind = schema.get("type", "any")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        if kind == "array" and "items" in schema:
            out += nodes.Text("array of ")
            out += self._type(schema["items"])
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            out += nodes.Text("object of ")
            out += self._type(schema["additionalProperties"])
        else:
            out += nodes.Text(kind)
        bounds = [
            f"{label} {schema[key]}"
            for key, label in (
                ("minimum", ">="),
                ("maximum", "<="),
                ("minLength", "min length"),
                ("maxLength", "max length"),
                ("pattern", "pattern"),
                ("format", "format"),
            )
            if key in schema
        ]
        if bounds:
            out += nodes.Text(" (" + ", ".join(bounds) + ")")
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("openapi-reference", OpenApiReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
