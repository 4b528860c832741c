"""The HTTP front (FastAPI): app (wiring), routes (one router per resource), schemas (every
request and response body), deps (what routes share), middleware, limits (the operator's
bounds), results_cache (analyses off the event loop), server (uvicorn), static (the pages).
Routes call `search`; they hold no logic of their own.
"""
