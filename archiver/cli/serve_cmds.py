"""`archiver serve`: the library in a browser (archiver.web), on loopback unless a token guards it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..errors import EXIT_USAGE
from .context import Context, fail, handle_errors, loading_libraries, pass_ctx
from .group import cli

if TYPE_CHECKING:
    import socket


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is one clear line and port 0 works."""
    import socket

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    sock.set_inheritable(True)
    return sock


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free one; the address is printed).")
@click.option("--token", metavar="TOKEN", envvar=None,
              help="Require this token (default: the config's serve_token / ARCHIVER_SERVE_TOKEN).")
@click.option("--open", "open_browser", is_flag=True, help="Open the library in your web browser.")
@pass_ctx
@handle_errors
def serve_cmd(ctx: Context, host: str, port: int, token: str | None, open_browser: bool) -> None:
    """Browse, search and play the library in a web browser: a local web app.

    It reads the database read-only (a running sync is never blocked) and serves only the
    files the database records. It listens on 127.0.0.1; to listen on another address, give a
    token, which every request must then carry (open the page once with ?token=TOKEN).

    \b
    Example:
      archiver serve --open
      archiver serve --port 9000
      archiver serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    from ..redact import register

    config = ctx.config(**({"serve_token": token} if token is not None else {}))
    token = config.serve_token or None
    register([token])
    if not is_loopback(host) and not token:
        fail(f"--host {host} is not loopback: give --token (or serve_token in the config) so that "
             "only you can open the library", EXIT_USAGE)
    reader = _reader_factory(ctx)
    sock = _listen(host, port)
    with loading_libraries():
        from ..web import server
        from ..web.app import Settings, create_app

    app = create_app(Settings(library=config.library, open_reader=reader, token=token))
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    note = "  (token required: open it once with ?token=TOKEN)" if token else ""
    click.echo(f"serving {config.library.resolve()} at {url}{note}  — Ctrl-C to stop")
    if open_browser:
        import webbrowser

        webbrowser.open(url + (f"?token={token}" if token else ""))
    server.run(app, sock)


def _reader_factory(ctx: Context) -> Any:
    """A new read-only connection per request for SQLite; one shared read-only Store otherwise.

    The library is opened once here, so a wrong --library is `no library at …` before listening.
    """
    from contextlib import nullcontext

    from ..readdb import ReadDB

    first = ctx.store(readonly=True)
    if isinstance(first, ReadDB):
        first.close()
        from ..web.server import QUERY_SECONDS

        url = ctx.config().db_url
        return lambda: ReadDB(url, time_limit=QUERY_SECONDS)
    return lambda: nullcontext(first)
