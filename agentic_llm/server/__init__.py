"""The gRPC front end: servicer, server, auth and error mapping.

    from agentic_llm.server import serve
    server = serve(load_config("dev"))     # builds the pipeline and starts serving
    server.wait()
"""

from __future__ import annotations

from typing import Any

from agentic_llm.config import ServerConfig
from agentic_llm.server.app import AgenticServer
from agentic_llm.server.errors import grpc_code_for, to_rpc_status

__all__ = ["AgenticServer", "serve", "grpc_code_for", "to_rpc_status"]


def serve(config: ServerConfig, *, pipeline: Any = None) -> AgenticServer:
    """Build the pipeline for ``config`` (unless given) and start a server on it."""
    if pipeline is None:
        from agentic_llm.serving import build_pipeline

        pipeline = build_pipeline(config)
    return AgenticServer(config, pipeline).start()
