"""The shapes of the names the app accepts: a workspace's Azure resource id and a logical location name."""

from __future__ import annotations

import re

WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

# Azure ML's own rules, kept here so that intake refuses at once what the platform would refuse on every retry.
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
"""A job's name, which is the run id of its events: letters, digits, `_` and `-`, from a letter or digit (no `.`)."""
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
"""A model's name or version (an asset's): letters, digits, `_`, `.` and `-`, from a letter or digit."""
