"""The function app: registers one blueprint per concern, nothing else."""

import azure.functions as func

from handlers import aml_events, controlroom, ops_api, scoring, timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(aml_events.bp)
app.register_functions(timers.bp)
app.register_functions(ops_api.bp)
app.register_functions(controlroom.bp)
app.register_functions(scoring.bp)
