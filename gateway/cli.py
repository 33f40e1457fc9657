"""The ``switchyard`` command (also ``python -m gateway``).

    switchyard serve [--config FILE] [--host H] [--port P] [--workers N]
    switchyard check-config [FILE | --config FILE]

FILE defaults to ``$SWITCHYARD_CONFIG``, then ``config/gateway.yaml``. CLI flags win over the YAML.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

from gateway.config import Config, load_config, resolve_config_path
from gateway.config_reader import ConfigError

log = logging.getLogger("switchyard")


def _load_or_exit(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        raise SystemExit(1) from None


def check_config(args: argparse.Namespace) -> int:
    config = _load_or_exit(args.file or args.config)
    print(f"OK: {len(config.providers)} providers, {len(config.models)} models")
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway import logs
    from gateway.app import Switchyard

    path = resolve_config_path(args.config)
    config = _load_or_exit(path)
    server = config.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    workers = args.workers or server.workers
    logs.configure(server.log_level)
    if not server.master_key and not config.governance.keys:
        log.warning("NO MASTER KEY IS SET: /v1 is open to anyone who can reach %s:%s. "
                    "Set server.master_key (e.g. ${SWITCHYARD_MASTER_KEY}) before exposing the gateway.", host, port)
    if workers > 1 and config.state.backend == "memory":
        log.warning("state.backend is 'memory' with %d workers: circuit breakers, rate limits, spend counters and "
                    "created keys are per worker process. Use state.backend: redis to share them.", workers)
    common = dict(host=host, port=port, log_config=None, access_log=False, lifespan="on",
                  timeout_graceful_shutdown=server.shutdown_grace_seconds, server_header=False,
                  loop=_loop(), http=_http(), backlog=4096)
    if workers > 1:
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        owned = metrics_dir is None
        if owned:
            metrics_dir = tempfile.mkdtemp(prefix="switchyard-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["SWITCHYARD_CONFIG"] = os.path.abspath(path)
        from gateway.reload import forward_sighup_to_workers

        forward_sighup_to_workers()  # SIGHUP: every worker re-reads the config in place
        try:
            from gateway import workers as worker_processes

            worker_processes.run("gateway.app:create_app", workers, **common)  # a listening socket per worker
        finally:
            if owned:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        return 0
    uvicorn.run(Switchyard(config=config, config_path=path), **common)
    return 0


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _http() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchyard", description="Switchyard: an OpenAI-compatible LLM gateway")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", help="config file (default: $SWITCHYARD_CONFIG, then config/gateway.yaml)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int)
    s.set_defaults(func=serve)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("file", nargs="?")
    c.add_argument("--config")
    c.set_defaults(func=check_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
