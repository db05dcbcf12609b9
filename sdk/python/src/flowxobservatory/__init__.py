"""Observatory SDK: trace LLM apps and agents and report the events to an Observatory server.

Quick start::

    from flowxobservatory import agent, tool, llm_call, configure

    configure(api_key="...", app_id="...")  # or FLOWX_OBSERVATORY_* environment variables

    @agent("support-bot")
    def answer(question: str) -> str: ...

See docs/SDK.md for the full guide.
"""

from ._version import __version__
from .client import Client, configure, flush, get_client, shutdown
from .config import Config
from .consumer import Stats
from .context import current_run_id, identify
from .decorators import agent, chain, tool
from .events import track_event
from .llm import LLMCall, llm_call, record_llm_call

__all__ = [
    "Client",
    "Config",
    "LLMCall",
    "Stats",
    "__version__",
    "agent",
    "chain",
    "configure",
    "current_run_id",
    "flush",
    "get_client",
    "identify",
    "llm_call",
    "record_llm_call",
    "shutdown",
    "tool",
    "track_event",
]
