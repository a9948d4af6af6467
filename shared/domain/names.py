"""The shapes of the names the app accepts: a workspace's Azure resource id and a logical location name."""

from __future__ import annotations

import re

WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
