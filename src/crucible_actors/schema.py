"""Stage option schemas: validation, normalization and option checking.

Reproduces CrucibleFramework's ``Crucible.Stage.Schema``, ``Schema.Normalizer`` and
``Stage.Validator``. The schema format and its type vocabulary are checked by
:func:`validate_schema`, options against a schema by :func:`validate_options`, and a
schema is derived from an ``Options`` Struct by :func:`schema_from_struct`.
"""

from ._core import format_type_spec as format_type_spec
from ._core import normalize_schema as normalize_schema
from ._core import schema_from_struct as schema_from_struct
from ._core import valid_type_spec as valid_type_spec
from ._core import validate_options as validate_options
from ._core import validate_schema as validate_schema

__all__ = [
    "format_type_spec",
    "normalize_schema",
    "schema_from_struct",
    "valid_type_spec",
    "validate_options",
    "validate_schema",
]
