"""app.history without Qt: Back/Forward as a browser has them, and the recent query photos kept as JSON."""

from __future__ import annotations

import os

from app.history import History, RecentQueries


def test_back_forward_and_a_new_search_dropping_forward():
    history = History()
    assert history.current is None and not history.can_go_back() and not history.can_go_forward()
    for query in ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg"):
        history.visit(query)
    history.visit("/p/c.jpg")  # the same search again is no new step
    assert len(history) == 3
    assert history.back().query == "/p/b.jpg" and history.back().query == "/p/a.jpg"
    assert history.back() is None and history.current.query == "/p/a.jpg"
    assert history.forward().query == "/p/b.jpg"
    history.visit("/p/d.jpg")
    assert not history.can_go_forward() and [history.back().query, history.back().query] == ["/p/b.jpg", "/p/a.jpg"]


def test_marks_travel_with_their_search_and_pixels_are_compared_by_identity():
    history = History()
    pixels = object()  # pasted pixels: the same paste is the same search, another paste is not
    history.visit(pixels)
    history.keep_marks({"/p/x.jpg": -1})
    history.visit(("/p/a.jpg", "/p/b.jpg"))
    history.visit(("/p/a.jpg", "/p/b.jpg"))
    visit = history.back()
    assert visit.query is pixels and visit.marks == {"/p/x.jpg": -1}
    history.visit(pixels)
    assert len(history) == 2
    history.visit(object())
    assert len(history) == 2 and history.can_go_back()


def test_history_is_bounded():
    history = History(limit=3)
    for number in range(5):
        history.visit(f"/p/{number}.jpg")
    assert len(history) == 3 and history.back().query == "/p/3.jpg"


def test_recent_queries_newest_first_without_pixels_and_round_trip_odd_names(tmp_path):
    recent = RecentQueries(limit=3)
    odd = os.fsdecode(b"/p/caf\xe9.jpg")  # a name that is not UTF-8 keeps its bytes
    for query in ("/p/a.jpg", object(), ("/p/b.jpg", "/p/c.jpg"), odd, "/p/a.jpg"):
        recent.add(query)
    assert recent.entries() == [("/p/a.jpg",), (odd,), ("/p/b.jpg", "/p/c.jpg")]
    again = RecentQueries.loads(recent.dumps(), limit=3)
    assert again.entries() == recent.entries()
    assert os.fsencode(again.entries()[1][0]) == b"/p/caf\xe9.jpg"
    real = tmp_path / "here.jpg"
    real.write_bytes(b"x")
    recent.add(str(real))
    assert recent.entries(exists=os.path.isfile) == [(str(real),)]
    recent.discard(str(real))
    assert (str(real),) not in recent.entries()
    assert RecentQueries.loads("not json").entries() == [] and RecentQueries.loads('{"a": 1}').entries() == []
