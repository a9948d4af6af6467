"""opsctl: the aml-reactor admin API from the command line.

Installed with `pip install .` (the wheel holds only this package; its one dependency is
`requests`), or run from a checkout as `python -m opsctl`. See `opsctl --help`.
"""

__version__ = "0.1.0"
