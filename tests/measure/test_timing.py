from gluonres.measure.timing import interleaved, local


def test_rounds_alternate_the_order_of_the_timers():
    calls = []
    timers = [local(name, lambda name=name: calls.append(name), 1) for name in "abc"]
    interleaved(timers, 4, 1, 2)
    assert calls[:3] == ["a", "b", "c"]  # warm-up, one call each
    assert "".join(calls[3:]) == "aabbcc" "ccbbaa" "aabbcc" "ccbbaa"
    assert [len(t.samples) for t in timers] == [4, 4, 4]
