"""`archiver serve`: the library as a local web app, on the read side of the package.

`app` builds the ASGI application (routes, the token and host guard, security headers),
`pages` answers each page through library.py, overview.py and query.py, `views` prepares what the
templates show, `files` sends archived files by clip id from a descriptor opened safely, `server`
runs it on uvicorn with limits on slow clients and slow queries. Starlette,
uvicorn and Jinja2 are imported only by `archiver serve`; the ORM and HTTP clients never are.
"""
