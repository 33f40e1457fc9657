"""A third-party provider is a package with an entry point: no core file changes."""

from __future__ import annotations

import textwrap

import openai

from tests.harness import run_gateway

PLUGIN = textwrap.dedent('''
    import orjson
    from providers.base import OptionSpec
    from providers.mock import MockProvider

    class ShoutingProvider(MockProvider):
        """A plugin built on the mock: answers in capitals."""
        type_name = "shouting"
        options = {**MockProvider.options, "suffix": OptionSpec(str, "!", "appended to every answer")}

        def parse_chat(self, call, response):
            translated = super().parse_chat(call, response)
            body = orjson.loads(translated.body)
            for choice in body["choices"]:
                choice["message"]["content"] = choice["message"]["content"].upper() + self.config.option("suffix")
            translated.body = orjson.dumps(body)
            return translated
''')


def test_entry_point_plugin(tmp_path):
    (tmp_path / "acme_shout.py").write_text(PLUGIN)
    dist = tmp_path / "acme_shout-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-shout\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[switchyard.providers]\nshouting = acme_shout:ShoutingProvider\n")
    config = {"providers": {"loud": {"type": "shouting", "suffix": "!!"}},
              "models": {"m": {"deployments": [{"provider": "loud", "model": "x"}]}}}
    import os
    from tests.harness import ROOT
    with run_gateway(config, env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
        assert answer.choices[0].message.content == "HELLO!!"
