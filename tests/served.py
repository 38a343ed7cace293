"""The app launched for a test: in this process, on a free port of 127.0.0.1."""
import contextlib
import socket

from pipeline.settings import Settings


@contextlib.contextmanager
def served_app(settings: Settings):
    """app.py's UI for these settings, launched on a free local port; yields its URL and
    closes it at the end (test_app, test_browser)."""
    import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = app.build_ui(settings)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=port, quiet=True, **app.launch_options(settings))
    try:
        yield url
    finally:
        demo.close()
