"""xAI: the shared dialect plus its bad-key answer and no embeddings."""

from __future__ import annotations

import pytest

from gateway.errors import ContextLengthExceeded, InvalidApiKey, UnsupportedParameter, UpstreamClientError
from tests.providers.dialect_helpers import call, provider, response

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("body", [
    {"code": "Client specified an invalid argument", "error": "Incorrect API key provided: xa***ey."},
    {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
])
def test_bad_key_400_is_401(body):
    error = provider("xai").map_error(response(400, body))
    assert isinstance(error, InvalidApiKey) and error.status == 401 and error.code == "invalid_api_key"


def test_other_400s_stay_400():
    error = provider("xai").map_error(response(400, {"code": "x", "error": "temperature out of range"}))
    assert isinstance(error, UpstreamClientError) and error.status == 400
    assert isinstance(provider("xai").map_error(response(400, {"error": "This model's maximum prompt length is 131072 "
                                                                        "but the request contains 200000 tokens."})),
                      ContextLengthExceeded)


def test_no_embeddings():
    with pytest.raises(UnsupportedParameter):
        provider("xai").build_embeddings(call({"input": "x"}, endpoint="embeddings"))


def test_reasoning_content_is_relayed_untouched():
    body = (b'{"id":"x","object":"chat.completion","created":1,"model":"grok-4","choices":[{"index":0,"message":'
            b'{"role":"assistant","content":"hi","reasoning_content":"because","refusal":null},"logprobs":null,'
            b'"finish_reason":"stop"}]}')
    from providers.base import UpstreamResponse

    assert provider("xai").parse_chat(call({}), UpstreamResponse(200, {}, body)).body == body
