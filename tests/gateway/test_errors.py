import openai  # noqa: F401  (the SDK whose exception classes the statuses map to)

from gateway import errors


def test_envelope_shape_and_headers():
    error = errors.UpstreamRateLimited("slow down", retry_after=2.2)
    assert error.envelope() == {"error": {"message": "slow down", "type": "requests", "param": None,
                                          "code": "rate_limit_exceeded"}}
    assert error.response_headers() == {"retry-after": "3"}
    assert error.retryable and error.status == 429


def test_default_status_mapping():
    assert isinstance(errors.from_upstream_status(401, "x"), errors.InvalidApiKey)
    assert errors.from_upstream_status(500, "x").status == 502
    assert errors.from_upstream_status(529, "x").code == "overloaded"
    assert errors.from_upstream_status(503, "x").status == 503
    kept = errors.from_upstream_status(418, "teapot", code="tea")
    assert (kept.status, kept.code, kept.retryable) == (418, "tea", False)


def test_client_errors_are_never_retryable():
    for cls in (errors.InvalidRequest, errors.ModelNotFound, errors.UnsupportedParameter, errors.ContextLengthExceeded):
        assert not cls("x").retryable


def test_scrub_removes_keys():
    text = errors.scrub("bad key sk-proj-abcdefghijklmnop and Bearer abc.def-ghi123 and api_key=zzzz9999",
                        secrets=("mysecretvalue",))
    assert "abcdefghijklmnop" not in text and "abc.def-ghi123" not in text and "zzzz9999" not in text
    assert errors.scrub("value mysecretvalue here", ("mysecretvalue",)) == "value *** here"


def test_retry_after_parsing():
    assert errors.parse_retry_after({"retry-after": "5"}) == 5
    assert errors.parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert errors.parse_retry_after({}) is None
    assert errors.parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
