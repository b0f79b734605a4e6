"""RecordSplitter: the one delimiter splitter shared by the QRC codec and newline readers."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from qsysd.errors import FrameTooLarge
from qsysd.qrc import RecordSplitter


def split_all(splitter: RecordSplitter, data: bytes = b"") -> list[bytes | str]:
    """Records out of ``data``; an oversize record shows as the string "too large"."""
    splitter.receive_data(data)
    out: list[bytes | str] = []
    while True:
        try:
            record = splitter.next_record()
        except FrameTooLarge:
            out.append("too large")
            continue
        if record is None:
            return out
        out.append(record)


@given(
    records=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_records_come_out_whole_however_the_stream_is_cut(
    records: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(r + b"\n" for r in records)
    splitter = RecordSplitter(b"\n", max_size=64)
    out: list[bytes | str] = []
    previous = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        out += split_all(splitter, stream[previous:cut])
        previous = cut
    assert out == records
    assert splitter.buffered == 0


def test_a_burst_of_many_small_records_in_one_read_is_split_in_order() -> None:
    splitter = RecordSplitter(b"\0", max_size=16)
    burst = b"".join(b"%d\0" % i for i in range(100_000))
    assert split_all(splitter, burst) == [b"%d" % i for i in range(100_000)]
    assert splitter.buffered == 0


def test_an_endless_record_never_holds_more_than_the_limit_plus_one_read() -> None:
    splitter = RecordSplitter(b"\n", max_size=1000)
    outcomes: list[bytes | str] = []
    for _ in range(200):
        outcomes += split_all(splitter, b"a" * 900)
        assert splitter.buffered <= 1000 + 900
    outcomes += split_all(splitter, b"tail of it\nlast\n")
    # refused once, as soon as it passed the limit; its tail is skipped, not a record
    assert outcomes == ["too large", b"last"]


def test_an_oversize_record_that_arrives_whole_is_refused_and_the_next_one_served() -> None:
    splitter = RecordSplitter(b"\n", max_size=8)
    assert split_all(splitter, b"123456789\nok\n") == ["too large", b"ok"]
    assert split_all(splitter, b"12345678\n") == [b"12345678"]  # exactly the limit is fine


def test_finish_hands_over_an_unterminated_last_record_but_not_a_skipped_one() -> None:
    splitter = RecordSplitter(b"\n", max_size=8)
    assert split_all(splitter, b"one\ntwo") == [b"one"]
    assert splitter.finish() == b"two"
    assert splitter.finish() is None
    assert split_all(splitter, b"0123456789") == ["too large"]
    assert splitter.finish() is None


@pytest.mark.parametrize(("delimiter", "size"), [(b"", 8), (b"ab", 8), (b"\n", 0)])
def test_a_bad_delimiter_or_size_is_refused(delimiter: bytes, size: int) -> None:
    with pytest.raises(ValueError, match=r"delimiter|max_size"):
        RecordSplitter(delimiter, size)
