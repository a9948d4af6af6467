"""opsctl: the aml-reactor admin API from the command line.

Installed with `pip install .` (the wheel holds only this package; it needs `requests`, and
`azure-identity` to sign people in, imported only when a command needs a person's token), or
run from a checkout as `python -m opsctl`. See `opsctl --help`.
"""

__version__ = "0.1.0"
