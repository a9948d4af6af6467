"""The HTTP admin API's core: request and response models, plain handlers, the route
table, error mapping, the role check and the OpenAPI document, all without a trigger.

`handlers/ops_api.py` registers one HTTP function per path of `paths.FUNCTIONS` (the light
projection of `routes.ROUTES`), and each one calls `http.serve`; the handlers take `Services`
and validated input only.
"""
