"""Sphinx configuration for the crucible-actors documentation.

Build (warnings as errors, every reference checked):
``sphinx-build -W --keep-going -n -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import crucible_actors  # noqa: E402

project = "crucible-actors"
author = "crucible-actors contributors"
copyright = "the crucible-actors contributors, MIT licence"
release = crucible_actors.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
    "cli_reference",
    "openapi_reference",
    "public_api",
    "public_refs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Every reference must resolve (-n); external names are checked by public_refs.
nitpicky = True

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    # Public classes get methods from private bases (SQLiteStore from the shared SQL
    # store, Persistence from recovery): document those; not what Python's own bases give.
    "inherited-members": (
        "object,BaseException,Exception,tuple,dict,list,str,int,float,Enum,IntEnum,StrEnum,"
        "Protocol,Generic,Struct,ABC,NamedTuple"
    ),
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

html_theme = "furo"
html_title = f"crucible-actors {release}"
html_static_path: list[str] = []
