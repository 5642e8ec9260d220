"""A line chart as inline SVG, drawn on the server: no script, no CDN."""

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
COLOURS = ("#2457c5", "#c2410c", "#067647", "#7c3aed")


def line_chart(days, series, top=None):
    """What the template draws: axes, gridlines and one polyline per series of (label, values),
    values None where there is nothing. The y axis goes from 0 to `top` (or the data's highest
    value, at least 100, rounded up to 25)."""
    values = [v for _, points in series for v in points if v is not None]
    top = top or max(100, -(-max(values, default=0) // 25) * 25)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(days) - 1)

    def x(i):
        return round(LEFT + i * step, 1)

    def y(v):
        return round(TOP + plot_h * (1 - v / top), 1)

    lines = []
    for n, (label, points) in enumerate(series):
        drawn = [(x(i), y(v), v, days[i]) for i, v in enumerate(points) if v is not None]
        lines.append({"label": label, "colour": COLOURS[n % len(COLOURS)],
                      "points": " ".join(f"{px},{py}" for px, py, _, _ in drawn),
                      "dots": [{"x": px, "y": py, "title": f"{label} {day:%d %b}: {v:g}"} for px, py, v, day in drawn]})
    grid = [{"y": y(v), "label": f"{v:g}"} for v in range(0, int(top) + 1, 25 if top <= 200 else 50)]
    last = len(days) - 1
    ticks = [{"x": x(i), "label": f"{day:%d %b}"} for i, day in enumerate(days)
             if i % 7 == 0 and last - i >= 4 or i == last]  # no label crowding the last one
    return {"width": WIDTH, "height": HEIGHT, "lines": lines, "grid": grid, "ticks": ticks, "left": LEFT,
            "right": WIDTH - RIGHT, "bottom": HEIGHT - BOTTOM, "empty": not values}
