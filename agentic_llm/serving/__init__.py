"""The in-process serving pipeline shared by the gRPC server, the SDK and the CLI.

    from agentic_llm.config import load_config
    from agentic_llm.serving import build_pipeline
    pipeline = build_pipeline(load_config("dev"))
    result = pipeline.run(GenerateRequest.from_json({...}))
    print(result.text, result.cache, result.counts)
"""

from agentic_llm.serving.admission import Admission, AdmissionStats
from agentic_llm.serving.build import build_engine, build_pipeline, resolve_model_dir
from agentic_llm.serving.knowledge import KnowledgeAdmin, KnowledgeRecord
from agentic_llm.serving.pipeline import CancelToken, Pipeline, PipelineParts, StreamItem
from agentic_llm.serving.result import (
    AstBlockInfo,
    AstNodeInfo,
    BranchResult,
    CacheOutcome,
    DiagnosticInfo,
    NodeEvent,
    ServingResult,
    Timings,
    TokenCounts,
    TokenDelta,
)
from agentic_llm.serving.subgraphs import CacheHit, SubgraphStore, open_subgraph_cache

__all__ = [
    "Admission",
    "AdmissionStats",
    "AstBlockInfo",
    "AstNodeInfo",
    "BranchResult",
    "CacheHit",
    "CacheOutcome",
    "CancelToken",
    "DiagnosticInfo",
    "KnowledgeAdmin",
    "KnowledgeRecord",
    "NodeEvent",
    "Pipeline",
    "PipelineParts",
    "ServingResult",
    "StreamItem",
    "SubgraphStore",
    "Timings",
    "TokenCounts",
    "TokenDelta",
    "build_engine",
    "build_pipeline",
    "open_subgraph_cache",
    "resolve_model_dir",
]
