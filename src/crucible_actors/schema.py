"""Stage option schemas: validation, normalization and option checking.

Reproduces the reference's ``Crucible.Stage.Schema``, ``Schema.Normalizer`` and
``Stage.Validator``. The schema format and its type vocabulary are
:mod:`crucible_actors._core._schema`, option checking (and how each type spec treats
Python values) :mod:`crucible_actors._core._schema_options`, and the derivation from an
``Options`` Struct :mod:`crucible_actors._core._schema_struct`.
"""

from ._core._schema import format_type_spec as format_type_spec
from ._core._schema import normalize_schema as normalize_schema
from ._core._schema import valid_type_spec as valid_type_spec
from ._core._schema import validate_schema as validate_schema
from ._core._schema_options import validate_options as validate_options
from ._core._schema_struct import schema_from_struct as schema_from_struct

__all__ = [
    "format_type_spec",
    "normalize_schema",
    "schema_from_struct",
    "valid_type_spec",
    "validate_options",
    "validate_schema",
]
