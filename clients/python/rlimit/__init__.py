"""rlimit: clients of the rlimitd rate-limit daemon, and FastAPI middleware.

    from rlimit import Client
    decision = Client("unix:/run/rlimitd/rlimitd.sock").check("api", "user-1")
    if not decision.allowed: ...  # retry after decision.retry_after seconds

AsyncClient is the asyncio twin; rlimit.fastapi holds the middleware (and is the
only module that imports FastAPI/Starlette).
"""

from . import errors
from .aio import AsyncClient
from .calls import read_token
from .client import Client
from .leases import HeldLease
from .rules import RulesFile, RulesFileError, load_rules
from .decision import Decision, Lease
from .errors import (
    ConnectError,
    ConnectionLost,
    LeaseDenied,
    LeaseUnknown,
    PolicyKind,
    ProtocolError,
    RateLimitError,
    StatusError,
    Timeout,
    UnknownPolicy,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ConnectError",
    "ConnectionLost",
    "Decision",
    "HeldLease",
    "Lease",
    "LeaseDenied",
    "LeaseUnknown",
    "PolicyKind",
    "ProtocolError",
    "RateLimitError",
    "RulesFile",
    "RulesFileError",
    "StatusError",
    "Timeout",
    "UnknownPolicy",
    "errors",
    "load_rules",
    "read_token",
]
__version__ = "0.1.0"
