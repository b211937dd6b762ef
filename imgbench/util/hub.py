"""May the Hugging Face hub be reached, and can it? One answer for models, scorers, MLLMs and suites.

Both questions are asked before any download so that missing weights fail in seconds with a fix-it
message (eval_toolkits.md §(c) pain point 4), instead of huggingface_hub's ~25 s of retries against a
refused connection. Environment variables are read at call time, not import time.
"""

from __future__ import annotations

import os

#: Either one set to a true value forbids every download (HF_HUB_OFFLINE is huggingface_hub's own switch).
OFFLINE_VARS = ("IMGBENCH_OFFLINE", "HF_HUB_OFFLINE")
#: Seconds to wait for a TCP connection to the hub (or the proxy in front of it).
CONNECT_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when IMGBENCH_OFFLINE or HF_HUB_OFFLINE is set to a true value (1/true/yes/on; 'false' and '0' are not)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_VARS)


def endpoint() -> str:
    """The hub's base URL (HF_ENDPOINT, honoured by huggingface_hub too)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def unreachable() -> OSError | None:
    """Open one TCP connection to the hub (or its proxy) with a short timeout; the error if that fails, else None."""
    import socket
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(endpoint())
    target = url
    if not urllib.request.proxy_bypass(url.hostname or ""):
        proxies = urllib.request.getproxies()
        proxy = proxies.get(url.scheme) or proxies.get("all")
        if proxy:
            target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return OSError(f"cannot connect to {target.hostname}:{port} for {endpoint()}: {exc}")
    return None
