"""The gateway: an ASGI app over the request pipeline, served over HTTPS.

from bastion.settings import Settings
from bastion.workspace import Workspace
from bastion.serving import build_app
app = build_app(Workspace(settings=Settings(home=".bastion")))
"""

from bastion.serving.app import build_app
from bastion.serving.process import ServerProcess, free_port
from bastion.serving.server import serve

__all__ = ["ServerProcess", "build_app", "free_port", "serve"]
