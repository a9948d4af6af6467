# After the first code deployment the functions exist, so Event Grid can validate them:
# provision once more with the event subscriptions on. Later deployments skip this.
$ErrorActionPreference = 'Stop'
if ($env:MLOPS_EVENT_SUBSCRIPTIONS -eq 'true') { exit 0 }
Write-Host 'postdeploy: creating the Event Grid subscriptions now that the functions exist'
azd env set MLOPS_EVENT_SUBSCRIPTIONS true
azd provision --no-prompt
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
