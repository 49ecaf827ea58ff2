"""``agentic-llm serve``: run the gRPC server from a YAML profile.

    agentic-llm serve                           # default profile: shipped model, LMDB cache
    agentic-llm serve --profile dev --listen 127.0.0.1:50051
    agentic-llm serve --config my.yaml --set limits.max_concurrent=16

SIGTERM or Ctrl-C drains: new calls get UNAVAILABLE, in-flight ones finish.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

__all__ = ["register", "config_from_args"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the gRPC server", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", default=None, help="profile name (default, dev, redis)")
    src.add_argument("--config", default=None, metavar="YAML", help="profile file")
    p.add_argument("--listen", help="HOST:PORT (port 0 picks a free one)")
    p.add_argument("--model", metavar="PATH", help="checkpoint directory or .gguf file")
    p.add_argument("--cache", choices=["memory", "lmdb", "redis", "none"], help="subgraph cache store")
    p.add_argument("--cache-path", metavar="DIR", help="LMDB directory")
    p.add_argument("--redis-url", metavar="URL", help="redis://host:6379/0")
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--token-env", metavar="VAR", help="require the bearer token held in $VAR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. limits.max_queue=8 (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--backend", choices=["native", "sglang"], default="native",
                   help="model executor: our engine, or SGLang on CUDA (docs/sglang.md)")
    p.add_argument("--model-path", metavar="DIR", help="--backend sglang: the model SGLang loads")
    p.add_argument("--tp", type=int, default=1, help="--backend sglang: tensor-parallel degree")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The resolved :class:`ServerConfig` of the command line."""
    from agentic_llm.config import load_config
    from agentic_llm.errors import AgenticError, ErrorCode

    overrides: dict[str, Any] = {}
    for flag, key in (("listen", "listen"), ("model", "model.dir"), ("cache", "cache.store"),
                      ("cache_path", "cache.path"), ("redis_url", "cache.redis_url"),
                      ("tls_cert", "tls.cert_file"), ("tls_key", "tls.key_file"),
                      ("token_env", "auth.token_env")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = yaml.safe_load(raw)
    return load_config(args.config or args.profile or "default", overrides)


def run(args: argparse.Namespace) -> int:
    if args.backend == "sglang":
        from agentic_llm.integrations.sglang.serve import run as run_sglang

        return run_sglang(args)
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import build_pipeline

    config = config_from_args(args)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pipeline = build_pipeline(config)
    stack = _observability(config, pipeline)
    server = AgenticServer(config, pipeline,
                           health_registry=stack.health if stack is not None else None)
    # Handlers first: a SIGTERM that arrives as the port opens must drain, not kill.
    server.install_signal_handlers()
    server.start()
    if stack is not None:
        print(f"agentic-llm: metrics and health on {stack.url}", file=sys.stderr, flush=True)
    print(f"agentic-llm: serving on {server.address}", file=sys.stderr, flush=True)
    try:
        while not server.wait(0.5):
            pass
    finally:
        pipeline.close()
        if stack is not None:
            stack.shutdown()
    return 0


def _observability(config: Any, pipeline: Any) -> Any:
    """Start the metrics/health HTTP stack bound to ``pipeline`` when configured."""
    obs = config.observability
    if not obs.enabled:
        return None
    from agentic_llm.observability.config import ObservabilityConfig
    from agentic_llm.observability.stack import ObservabilityStack

    host, _, port = obs.http_listen.rpartition(":")
    if obs.config:
        oc = ObservabilityConfig.from_yaml(obs.config)
    else:
        oc = ObservabilityConfig(http_host=host, http_port=int(port))
    stack = ObservabilityStack(oc).start()
    stack.bind_pipeline(pipeline, store=config.cache.store)
    return stack
