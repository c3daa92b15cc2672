"""The one text-table formatter of the ``gmg`` command: rows of dicts or a DataFrame."""

from __future__ import annotations


def format_table(rows, title: str | None = None) -> str:
    """A fixed-width text table of ``rows`` (a list of dicts, a bench result's ``{"rows": [...]}``
    or a pandas DataFrame), under ``title`` if given."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    elif isinstance(rows, dict):
        rows = rows.get("rows", [])
    head = [title, "-" * len(title)] if title else []
    if not rows:
        return "\n".join([*head, "(no rows)"])
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)

    table = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(str(c)), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)) for t in table]
    return "\n".join([*head, *lines])
