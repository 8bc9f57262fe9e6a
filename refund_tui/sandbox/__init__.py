"""A faithful simulator of the Vesicash and Novasend refund APIs (Starlette, real HTTP).

``app.create_app`` builds the ASGI app; ``server.serve`` and ``server.EmbeddedSandbox`` run it.
Importing this package is cheap: the web stack loads only when those modules are imported.
"""
