"""hubsim: a local Hugging Face Hub that the unmodified huggingface_hub client runs against.

It speaks the HTTP contract in docs/hub-api-contract.md (repos, git-like commits, downloads, discussions
and pull requests, webhooks, the Hub's error codes), the Hub's rate limits, listings and model tree (see
docs/hubsim-emulation.md), adds fault injection for reliability tests, and keeps its state in memory or in
a data directory. Start it with `quantbot hubsim` or, in Python::

    with HubsimServer(create_hub()) as server:
        ...  # HF_ENDPOINT=server.url, token server.default_user.token
"""

from bot.hubsim.server import HubsimServer, create_hub
from bot.hubsim.service import HubService
from bot.hubsim.users import Directory, Org, User

__all__ = ["Directory", "HubService", "HubsimServer", "Org", "User", "create_hub"]
