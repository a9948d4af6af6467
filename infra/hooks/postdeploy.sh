#!/bin/sh
# After the first code deployment the functions exist, so Event Grid can validate them:
# provision once more with the event subscriptions on. Later deployments skip this.
set -eu
if [ "${MLOPS_EVENT_SUBSCRIPTIONS:-false}" = "true" ]; then
    exit 0
fi
echo "postdeploy: creating the Event Grid subscriptions now that the functions exist"
azd env set MLOPS_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
