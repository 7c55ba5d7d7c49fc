"""
Sphinx configuration of the sb3-ppg documentation.

Build it from the repository root, warnings as errors:

    sphinx-build -W -b html docs docs/_build/html

or ``make -C docs html``. The pages are MyST Markdown; API pages use autodoc, which imports ``sb3_ppg`` from
this checkout (the repository root is put first on ``sys.path`` below), so the docs describe the code next to
them even when another version of the package is installed.
"""

import os
import sys

DOCS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(DOCS_DIR)
sys.path.insert(0, REPO_ROOT)

# The version shown in the docs is the package's own
with open(os.path.join(REPO_ROOT, "sb3_ppg", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

# -- Project information -----------------------------------------------------

project = "SB3-PPG"
author = "sb3-ppg contributors"
copyright = "sb3-ppg contributors"
version = __version__
release = __version__

# -- General configuration ---------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# Optional niceties: used when installed, the build does not need them
try:
    import sphinx_copybutton  # noqa: F401

    extensions.append("sphinx_copybutton")
except ImportError:
    pass

source_suffix = {".md": "markdown"}
root_doc = "index"
language = "en"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: `:::` fences for admonitions, and anchors for headings down to ### so pages can link to sections
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# -- autodoc -----------------------------------------------------------------

autodoc_member_order = "bysource"
# Type hints go into the parameter descriptions, next to the text of each :param:
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"

# -- HTML output -------------------------------------------------------------

html_theme = "furo"
html_title = f"SB3-PPG {__version__}"
