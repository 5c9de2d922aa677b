"""How a diagnostic shows its source line."""

from trick.dsl.diagnostics import MAX_SHOWN, Diagnostic, Span


def test_a_long_line_is_shown_as_a_window_around_the_column():
    line = "x" * 50_000 + "abc" + "y" * 50_000
    shown, caret = Diagnostic(Span("f.trick", 1, 50_001, 1, 50_004), "bad", source_line=line).render().splitlines()[1:]
    assert len(shown) <= 4 + MAX_SHOWN + 2 and shown.startswith("    …") and shown.endswith("…")
    at = caret.index("^")
    assert shown[at : at + 3] == "abc" and caret[at:] == "^~~"


def test_a_short_line_is_shown_whole():
    assert Diagnostic(Span("f.trick", 1, 3, 1, 5), "bad", source_line="abcdef").render() == "f.trick:1:3: error: bad\n    abcdef\n      ^~"
