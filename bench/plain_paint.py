"""Child process for the start-up benchmark's baseline: a plain Textual app, timed to its first paint.

Run as ``python -m bench.plain_paint``. A header, a static, an input, a button and a footer: what any Textual
app pays (the interpreter, importing Textual, mounting and painting one screen), so first paint of the wizard
(``bench.first_paint``) and of the demo (``bench.demo_paint``) are read as ratios against Textual's own floor.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Button, Footer, Header, Input, Static


class PlainApp(App[int]):
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Paste a key to go on. It is not shown or stored.")
        yield Input(password=True, placeholder="napi_…")
        yield Button("Check and continue", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        # After the next refresh the screen has been composed, laid out and painted (as in first_paint).
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        print("painted", flush=True)
        self.exit(0)


def main() -> int:
    return int(PlainApp().run(headless=True) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
