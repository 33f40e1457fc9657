"""Replicate: chat through predictions (``POST /v1/models/{owner}/{name}/predictions`` or
``POST /v1/predictions`` with a version), then ``follow_up`` requests for the pipeline to make.

    non-stream:  create with ``Prefer: wait=N``; while the prediction is starting/processing,
                 follow_up polls ``urls.get`` every ``poll_interval`` seconds (up to ``max_wait``)
    stream:      create with ``stream: true``; follow_up opens ``urls.stream`` (SSE, ``stream=True``)

The translation lives in ``request``, ``response``, ``stream`` and ``errors``. Replicate offers no
tools and no embeddings. See docs/providers/replicate.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.errors import GatewayError, UnsupportedParameter
from providers.base import (
    Call,
    Capabilities,
    OptionSpec,
    Provider,
    StreamTranslator,
    Translated,
    UpstreamRequest,
    UpstreamResponse,
)
from providers.replicate import errors, request, response
from providers.replicate.stream import ReplicateStreamTranslator
from providers.vendor_answers import load_object

INPUT_STYLES = ("prompt", "messages")


class ReplicateProvider(Provider):
    type_name = "replicate"
    default_api_base = "https://api.replicate.com"
    capabilities = Capabilities(chat=True, embeddings=False, tools=False, vision=True, json_mode=False,
                                streaming_usage=False)
    unsupported_params = request.UNSUPPORTED
    options = {
        "input_style": OptionSpec(str, "prompt", "'prompt' (prompt + system_prompt) or 'messages' "
                                                 "(messages list + system_prompt)", choices=INPUT_STYLES),
        "max_tokens_field": OptionSpec(str, "max_tokens", "input name for max_tokens (e.g. max_new_tokens)"),
        "image_field": OptionSpec(str, None, "input name for image_url parts (e.g. image, image_input); "
                                             "unset: images are rejected"),
        "image_list": OptionSpec(bool, True, "send images as a list (false: a single URL string)"),
        "input_defaults": OptionSpec(dict, {}, "extra input fields for every prediction (mapped fields win)"),
        "prefer_wait": OptionSpec(int, 60, "seconds for 'Prefer: wait=N' on non-stream calls (0: no header)"),
        "poll_interval": OptionSpec(float, 1.0, "seconds between polls of urls.get"),
        "max_wait": OptionSpec(float, 600.0, "seconds of polling before the call fails as a timeout"),
        "deployment": OptionSpec(bool, False, "the model names a deployment "
                                              "(POST /v1/deployments/{owner}/{name}/predictions)"),
        "trusted_hosts": OptionSpec(list, [], "extra hosts the key may be sent to when following urls.get / "
                                              "urls.stream (api_base's host and its domain are always trusted)",
                                    item_type=str),
    }

    def opt(self, name: str) -> Any:
        value = self.config.option(name)
        return self.options[name].default if value is None else value

    # -- chat -----------------------------------------------------------------------------------

    def build_chat(self, call: Call) -> UpstreamRequest:
        body = self.check_params(call, request.unsupported_fields(call.body))
        owner, name, version = request.parse_model(call.model)
        options = {key: self.opt(key) for key in self.options}
        payload: dict[str, Any] = {"input": request.build_input(body, options)}
        if self.opt("deployment"):
            url = f"{self.api_base}/v1/deployments/{owner}/{name}/predictions"
        elif version:
            url = f"{self.api_base}/v1/predictions"
            payload = {"version": version, **payload}
        else:
            url = f"{self.api_base}/v1/models/{owner}/{name}/predictions"
        headers = self.auth_headers()
        if call.stream:
            payload["stream"] = True
        elif int(self.opt("prefer_wait")) > 0:
            headers["prefer"] = f"wait={min(60, int(self.opt('prefer_wait')))}"  # Replicate allows 1..60
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def follow_up(self, call: Call, upstream: UpstreamResponse) -> UpstreamRequest | None:
        if upstream.status >= 400 or call.scratch.get("replicate_streaming"):
            return None
        prediction = load_object(upstream.body, self.config.name)
        status = str(prediction.get("status"))
        urls = prediction.get("urls") or {}
        if call.stream:
            if status in ("failed", "canceled"):
                raise response.prediction_error(status, prediction.get("error"), self.config.name)
            url = self._followable(urls.get("stream"))
            if url is None:
                raise UnsupportedParameter(f"Replicate model '{call.model}' does not support streaming",
                                           param="stream")
            call.scratch["replicate_streaming"] = True
            headers = {**self.auth_headers(), "accept": "text/event-stream", "cache-control": "no-store"}
            headers.pop("content-type", None)
            return UpstreamRequest("GET", url, headers, stream=True)
        if status not in response.RUNNING:
            return None
        url = self._followable(urls.get("get"))
        interval = float(self.opt("poll_interval"))
        waited = call.scratch.get("replicate_waited", 0.0)
        if url is None or waited + interval > float(self.opt("max_wait")):
            return None  # parse_chat reports the unfinished prediction as a timeout
        call.scratch["replicate_waited"] = waited + interval
        headers = self.auth_headers()
        headers.pop("content-type", None)
        return UpstreamRequest("GET", url, headers, delay=interval)

    def _followable(self, url: Any) -> str | None:
        """A URL from a prediction, if the key may be sent there: only to api_base's host, hosts under
        its domain (api.replicate.com -> stream.replicate.com), or ``trusted_hosts``; never elsewhere."""
        if not isinstance(url, str):
            return None
        parts = urlsplit(url)
        host = parts.hostname or ""
        base_host = urlsplit(self.api_base).hostname or ""
        domain = ".".join(base_host.split(".")[-2:]) if not base_host.replace(".", "").isdigit() else base_host
        trusted = host == base_host or host == domain or host.endswith("." + domain) or host in self.opt("trusted_hosts")
        if parts.scheme not in ("http", "https") or not trusted:
            return None
        return url

    def parse_chat(self, call: Call, upstream: UpstreamResponse) -> Translated:
        return response.chat_completion(call, load_object(upstream.body, self.config.name), self.config.name)

    def stream_translator(self, call: Call) -> StreamTranslator:
        return ReplicateStreamTranslator(call, self.config.name)

    # -- models ---------------------------------------------------------------------------------

    def build_list_models(self) -> UpstreamRequest:
        headers = self.auth_headers()
        headers.pop("content-type", None)
        return UpstreamRequest("GET", f"{self.api_base}/v1/models", headers)

    def parse_list_models(self, upstream: UpstreamResponse) -> list[dict[str, Any]]:
        return response.models(upstream.json())

    # -- errors ---------------------------------------------------------------------------------

    def map_error(self, upstream: UpstreamResponse) -> GatewayError:
        return errors.map_error(upstream, self.scrub)


__all__ = ["ReplicateProvider"]
