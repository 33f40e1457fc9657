"""End to end: the gateway process reaching its upstream through an HTTP forward proxy (``proxy:`` key)."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import MASTER_KEY, openai_config
from tests.fakes.forward_proxy import FakeProxy
from tests.fakes.openai import UPSTREAM_KEY
from tests.harness import run_gateway

PASSWORD = "proxy-pass-0123456789"


def test_provider_proxy_carries_chat_and_streams_and_its_password_stays_hidden(fake_openai):
    with FakeProxy(auth=("gw", PASSWORD)).in_thread() as proxy, FakeProxy(refuse=True).in_thread() as env_proxy:
        config = openai_config(fake_openai.url)
        config["providers"]["openai-main"]["proxy"] = proxy.url(f"gw:{PASSWORD}")
        with run_gateway(config, env={"HTTP_PROXY": env_proxy.url(), "NO_PROXY": ""}) as gw:
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
            completion = client.chat.completions.create(model="gpt-4o-mini",
                                                        messages=[{"role": "user", "content": "via proxy"}])
            assert completion.choices[0].message.content == "echo: via proxy"
            stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                    messages=[{"role": "user", "content": "streamed"}])
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert text == "echo: streamed"
            admin = httpx.get(gw.url + "/admin/providers", headers={"authorization": f"Bearer {MASTER_KEY}"},
                              timeout=10)
            assert admin.status_code == 200 and PASSWORD not in admin.text
            logs = gw.logs()
        target = f"{fake_openai.url}/v1/chat/completions"
        assert [(s.method, s.target) for s in proxy.seen] == [("POST", target)] * 2  # absolute form, keep-alive
        assert proxy.connections == 1 and env_proxy.seen == []  # the provider's key beats HTTP_PROXY
        assert fake_openai.last().headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert PASSWORD not in logs
