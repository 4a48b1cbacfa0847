"""Theme colours made readable: every text colour the wizard uses reaches 4.5:1 (WCAG AA) on what it is
drawn on, in whichever theme is active.

Textual's themes derive text colours from the theme's hues (``$text-success`` is the success hue tinted
toward the text colour), which in ``textual-light`` gives 3.2:1 for green on grey, and its primary buttons
and list cursors put 87% white on a blue that needs pure white. Rather than hand-pick colours per theme,
:func:`readable_variables` measures each text variable against its backgrounds and, where it falls short,
moves it toward black or white (whichever reads better) just far enough: the hue stays recognisable and a
theme added later is covered too. Hand-written because Textual has no contrast guarantee to switch on;
the ratio is WCAG 2's definition.
"""

from __future__ import annotations

from typing import Final

from textual.color import Color

AA: Final = 4.5

# Where each text colour is drawn. "boost" is translucent: it is measured over the background.
_PANELS: Final = ("background", "surface", "panel", "boost")
TEXT_ON: Final[dict[str, tuple[str, ...]]] = {
    "text-primary": _PANELS,
    "text-success": _PANELS,
    "text-warning": _PANELS,
    "text-error": _PANELS,
    "text-accent": _PANELS,
    "text-muted": _PANELS,
    "footer-key-foreground": ("footer-background",),
    "footer-description-foreground": ("footer-background",),
    "block-cursor-foreground": ("block-cursor-background",),
}
# Variables of our own (app.tcss): text on a coloured button, and an input's placeholder.
OWN_TEXT_ON: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    # name: (the variable it starts from, what it is drawn on)
    "on-primary": ("button-color-foreground", ("primary",)),
    "on-warning": ("button-color-foreground", ("warning",)),
    "on-error": ("button-color-foreground", ("error",)),
    "text-placeholder": ("text-muted", ("surface", "background")),
}


def luminance(color: Color) -> float:
    """WCAG 2 relative luminance of an opaque colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio of two opaque colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _colour(value: str, over: Color) -> Color:
    """A variable's colour as the terminal shows it over ``over``: "auto 87%" is the contrast text of the
    background at that opacity, and translucent colours are blended onto it."""
    text = value.strip()
    if text.startswith("auto"):
        parts = text.split()
        alpha = float(parts[1].rstrip("%")) / 100 if len(parts) > 1 else 1.0
        return over + over.get_contrast_text(alpha)
    colour = Color.parse(text.split()[0])
    if len(text.split()) > 1:  # "ansi_default 50%" and the like: an opacity after the colour
        colour = colour.with_alpha(float(text.split()[1].rstrip("%")) / 100)
    return over + colour if colour.a < 1 else colour


def _readable(start: str, backgrounds: list[Color]) -> str | None:
    """``start`` moved toward black or white until it reaches AA on every background; None if it does."""
    shown = [_colour(start, bg) for bg in backgrounds]
    if all(contrast(fg, bg) >= AA for fg, bg in zip(shown, backgrounds, strict=True)):
        return None
    base = shown[0]
    black, white = Color(0, 0, 0), Color(255, 255, 255)
    target = max((black, white), key=lambda t: min(contrast(t, bg) for bg in backgrounds))
    for step in range(1, 41):
        candidate = base.blend(target, step / 40)
        if all(contrast(candidate, bg) >= AA for bg in backgrounds):
            return candidate.hex
    return target.hex


def readable_variables(variables: dict[str, str]) -> dict[str, str]:
    """``variables`` (a theme's CSS variables) with every text colour raised to AA where it falls short."""
    try:
        background = Color.parse(variables["background"])
    except Exception:  # an ANSI theme: the terminal's own colours, which we cannot measure
        return variables
    result = dict(variables)

    def solid(name: str) -> Color:
        value = variables.get(name, "transparent")
        if value.startswith(("ansi", "auto")):
            return background
        return _colour(value, background)

    jobs = {name: (name, on) for name, on in TEXT_ON.items()} | OWN_TEXT_ON
    for name, (start, on) in jobs.items():
        value = variables.get(start)
        if value is None:
            continue
        adjusted = _readable(value, [solid(bg) for bg in on])
        result[name] = adjusted or value
    return result
