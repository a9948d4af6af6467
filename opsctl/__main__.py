"""`python -m opsctl`: the same CLI as the installed `opsctl` command."""

import sys

from opsctl.cli import main

sys.exit(main())
