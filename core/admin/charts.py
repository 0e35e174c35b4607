"""Server-rendered SVG charts of a history series (pure: a dict in, markup out).

One line per label, each with its own dash pattern and marker shape as well as colour
(readable without colour), a legend naming every label with its total, labelled axes
and a <title>/<desc> summary; every text is escaped. No script, no external reference:
the page shows it as an image.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 34
MAX_LINES = 6
COLOURS = ("#1f4e8c", "#b3541e", "#2e7d32", "#6a1b9a", "#00838f", "#5d4037")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "bar")


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def _clock(iso: str, with_seconds: bool) -> str:
    at = datetime.fromisoformat(iso)
    return at.strftime("%H:%M:%S" if with_seconds else "%m-%d %H:%M")


def summary(series: dict[str, Any], range_name: str) -> str:
    """The chart in one sentence (its alt text)."""
    totals = series.get("totals", {})
    kind = series["kind"]
    if not totals:
        return f"{series['title']} over {range_name}: no data yet."
    word = {"counter": "total", "gauge": "highest", "latency": "over the range"}[kind]
    parts = [f"{label} {_number(value)}" for label, value in
             sorted(totals.items(), key=lambda item: -item[1])[:MAX_LINES]]
    return f"{series['title']} ({series['unit']}) over {range_name}, {word}: {', '.join(parts)}."


def _lines(series: dict[str, Any]) -> list[str]:
    totals = series.get("totals", {})
    return sorted(series["labels"], key=lambda label: -(totals.get(label) or 0.0))[:MAX_LINES]


def render_svg(series: dict[str, Any], range_name: str) -> str:
    points = series["points"]
    lines = _lines(series)
    values = [p["values"].get(label) for p in points for label in lines]
    top = max([v for v in values if v is not None] + [0.0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + plot_w * i / count

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    title = summary(series, range_name)
    tall = HEIGHT + 18 * len(lines)  # the legend below the plot
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{tall}" '
        f'viewBox="0 0 {WIDTH} {tall}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(series['title'])}</title><desc>{escape(title)}</desc>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{tall}" fill="#fff"/>',
    ]
    for k in range(5):  # y axis: five labelled ticks from 0 to the top value
        v = top * k / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">'
                   f"{escape(_number(v))}</text>")
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 12 '
               f'{TOP + plot_h / 2:.0f})" text-anchor="middle">{escape(series["unit"])}</text>')
    if points:
        seconds = len(points) > 1 and (
            datetime.fromisoformat(points[-1]["at"]) - datetime.fromisoformat(points[0]["at"])
        ).total_seconds() < 3 * 86400
        for i in sorted({0, len(points) // 2, len(points) - 1}):  # x axis: start, middle, end
            anchor = "start" if i == 0 else "end" if i == len(points) - 1 else "middle"
            out.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}">'
                       f"{escape(_clock(points[i]['at'], bool(seconds)))}</text>")
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
               'stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#333"/>')
    for n, label in enumerate(lines):
        colour, dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
        coords = [(x(i), y(p["values"][label])) for i, p in enumerate(points)
                  if p["values"].get(label) is not None]
        if coords:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} '
                       f'points="{path}"/>')
            for a, b in coords[:: max(1, len(coords) // 12)]:
                out.append(_marker(MARKERS[n % len(MARKERS)], a, b, colour))
        legend_y = HEIGHT + 18 * n + 4
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{LEFT}" x2="{LEFT + 30}" y1="{legend_y}" y2="{legend_y}" '
                   f'stroke="{colour}" stroke-width="2"{dashed}/>')
        out.append(_marker(MARKERS[n % len(MARKERS)], LEFT + 15, legend_y, colour))
        total = series.get("totals", {}).get(label)
        text = label if total is None else f"{label}: {_number(total)}"
        out.append(f'<text x="{LEFT + 38}" y="{legend_y + 4}">{escape(text)}</text>')
    if not lines:
        out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                   'text-anchor="middle">no data yet</text>')
    out.append("</svg>")
    return "".join(out)


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    fill = quoteattr(colour)
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill={fill}/>'
    if shape == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill={fill}/>'
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} '
                f'{x + 4:.1f},{y + 3:.1f}" fill={fill}/>')
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} '
                f'{x + 4:.1f},{y:.1f}" fill={fill}/>')
    if shape == "cross":
        return (f'<path d="M{x - 3:.1f},{y - 3:.1f}L{x + 3:.1f},{y + 3:.1f}M{x - 3:.1f},'
                f'{y + 3:.1f}L{x + 3:.1f},{y - 3:.1f}" stroke={fill} stroke-width="2"/>')
    return f'<rect x="{x - 1:.1f}" y="{y - 4:.1f}" width="2" height="8" fill={fill}/>'
