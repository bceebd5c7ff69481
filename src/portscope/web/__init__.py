"""``portscope serve``: a local web dashboard of this host's ports (the ``web`` extra).

Starlette + uvicorn + Jinja2 (autoescape), server-rendered HTML and SVG, a little
hand-written JavaScript for live updates (EventSource). Imported only by
``portscope serve``. ``web.app.create_app`` builds the ASGI app; ``web._guard`` is the
security in front of it (loopback Host, URL token, headers).
"""
