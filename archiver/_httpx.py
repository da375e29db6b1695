"""httpx without its command-line client.

httpx imports its own CLI (click, rich and pygments' lexers) whenever they are installed, which
they are beside archiver: ~8% of the instructions a sync spends importing, for a client archiver
never runs. httpx falls back to a stub when that import fails, so it is made to fail while httpx
loads, and nothing is left in `sys.modules` after.
"""

import sys

_blocked = "httpx._main" not in sys.modules and "httpx" not in sys.modules
if _blocked:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
try:
    import httpx
finally:
    if _blocked:
        del sys.modules["httpx._main"]

__all__ = ["httpx"]
