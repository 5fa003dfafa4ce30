"""Twilio facts shared by ingest and sender: redacting credentials from URLs.

(Credential discovery, ``Retry-After`` parsing and client construction join here in the next step.)
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``http://AC…:TOKEN@host/path`` -> ``http://***@host/path``: any URL shown or stored goes through this.

    A URL without userinfo is returned unchanged; a value that is not a URL is returned as is.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
