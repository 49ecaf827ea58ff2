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

__all__ = ["register", "config_from_args", "startup_summary"]

_log = logging.getLogger("agentic_llm.serve")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the gRPC server", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", default=None, help="profile name (default, dev, redis)")
    src.add_argument("--config", default=None, metavar="YAML", help="profile file")
    p.add_argument("--listen", help="HOST:PORT (port 0 picks a free one)")
    p.add_argument("--model", metavar="PATH", help="checkpoint directory or .gguf file")
    p.add_argument("--cache", metavar="STORE",
                   help="subgraph cache store: memory, lmdb, redis, a plugin's (agentic-llm plugin list), "
                        "or none")
    p.add_argument("--cache-path", metavar="DIR", help="LMDB directory")
    p.add_argument("--redis-url", metavar="URL", help="redis://host:6379/0")
    p.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (turns TLS on, with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
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
    from agentic_llm.serving.build import build_engine, build_pipeline, resolve_model_dir

    config = config_from_args(args)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_dir = resolve_model_dir(config.model.dir)
    m = config.model
    _say(f"loading model {model_dir.name} from {model_dir} ({m.device}, {m.dtype})")
    engine = build_engine(config, model_dir)
    _say(f"preparing grammars and the subgraph cache ({config.cache.store})")
    pipeline = build_pipeline(config, engine=engine, model_dir=model_dir)
    stack = _observability(config, pipeline)
    server = AgenticServer(config, pipeline,
                           health_registry=stack.health if stack is not None else None)
    # Handlers first: a SIGTERM that arrives as the port opens must drain, not kill.
    server.install_signal_handlers()
    server.start()
    profile = args.config or args.profile or "default"
    _log.info(startup_summary(config, engine, model_dir, profile=profile,
                              address=server.address, metrics=stack.url if stack else ""))
    if stack is not None:
        _say(f"metrics and health on {stack.url}")
    _say(f"serving on {server.address}")
    try:
        while not server.wait(0.5):
            pass
    finally:
        pipeline.close()
        if stack is not None:
            stack.shutdown()
    return 0


def _say(text: str) -> None:
    print(f"agentic-llm: {text}", file=sys.stderr, flush=True)


def startup_summary(config: Any, engine: Any, model_dir: Any, *, profile: str, address: str,
                    metrics: str) -> str:
    """One ``key=value`` line: what this server runs and where it listens."""
    from agentic_llm.observability.logs import fields_line

    pool = engine.pool
    tls = config.tls
    token = config.auth.resolve_token()
    return fields_line("started", {
        "model": model_dir.name,
        "architecture": engine.model_config.model_type,
        "parameters": sum(p.numel() for p in engine.model.parameters()),
        "device": str(engine.device),
        "dtype": config.model.dtype,
        "kv_pages": pool.num_blocks,
        "kv_page_tokens": pool.block_size,
        "kv_bytes": pool.kv_store.numel() * pool.kv_store.element_size(),
        "profile": profile,
        "auth": "bearer-token" if token else "off",
        "tls": ("mutual" if tls.client_ca_file else "on") if tls.enabled else "off",
        "cache": config.cache.store,
        "aga": "on" if config.aga.enabled else "off",
        "listen": address,
        "metrics": metrics or "off",
    })


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
