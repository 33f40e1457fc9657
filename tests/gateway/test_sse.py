from gateway.sse import SSEDecoder, encode_data, encode_event

RAW = (b'event: a\r\ndata: {"x":1}\r\n\r\n: keep-alive\n\ndata:hi\ndata: there\n\n'
       b'id: 5\revent: done\rdata: [DONE]\r\r' + "data: \u00e9t\u00e9\n\n".encode())


def decode_whole(raw: bytes):
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.flush()


def test_line_endings_comments_and_multiline():
    events = decode_whole(RAW)
    assert [(e.event, e.data, e.id) for e in events] == [
        ("a", '{"x":1}', ""), ("", "hi\nthere", ""), ("done", "[DONE]", "5"), ("", "\u00e9t\u00e9", "5")]  # the last event id persists (WHATWG)


def test_every_split_point_gives_the_same_events():
    whole = decode_whole(RAW)
    for cut in range(len(RAW) + 1):
        decoder = SSEDecoder()
        assert decoder.feed(RAW[:cut]) + decoder.feed(RAW[cut:]) + decoder.flush() == whole, cut


def test_byte_by_byte():
    decoder = SSEDecoder()
    events = []
    for i in range(len(RAW)):
        events += decoder.feed(RAW[i:i + 1])
    assert events + decoder.flush() == decode_whole(RAW)


def test_final_event_without_blank_line_is_flushed():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last") == []
    assert [e.data for e in decoder.flush()] == ["last"]


def test_encoders():
    assert encode_data({"a": 1}) == b'data: {"a":1}\n\n'
    assert encode_event("output", "hi", event_id="1") == b"id: 1\nevent: output\ndata: hi\n\n"
