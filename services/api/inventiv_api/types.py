"""Field types shared by request bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# Deliberately permissive: self-hosted platforms use internal domains (.local,
# .internal, .lan) that strict validators reject. One @, no spaces, a dot-free host
# allowed; deliverability is the mail system's business.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$"
    ),
]
