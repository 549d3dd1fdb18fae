"""Redis commands packed in RESP by hand, for the store's hot paths.

redis-py's packer checks the type of every argument and encodes each one
separately. The store's commands pass only strings, so building one string and
encoding it once costs less client CPU per command.
"""

from __future__ import annotations


def pack_command(*parts: str) -> bytes:
    """Encode one Redis command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + pack_arguments(*parts)


def pack_arguments(*parts: str) -> bytes:
    """Encode ``parts`` as RESP bulk strings, without the command's array header."""
    chunks = []
    for part in parts:
        # A bulk string's length counts bytes; for ASCII text that is its length.
        size = len(part) if part.isascii() else len(part.encode())
        chunks.append(f"${size}\r\n{part}\r\n")
    return "".join(chunks).encode()
