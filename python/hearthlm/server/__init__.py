"""hearth-server: an OpenAI-compatible HTTP server over the engine.

    hearth-server -m model.gguf --port 8000        # or python -m hearthlm.server

create_app(engine, name) gives the FastAPI app for embedding (needs the
``server`` extra: pip install 'hearthlm[server]')."""


def create_app(*args, **kwargs):
    from .app import create_app as _create_app
    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
