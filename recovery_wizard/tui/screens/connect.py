"""The first screen: the API key (or, in the demo, the story while the sandbox starts).

Its own module, importing only Textual and the shared frame: it is what first paint waits for, and the other
screens (with the runbook, httpx and msgspec behind them) load when they are first shown.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Button, Input, Static

from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.text import safe


class ConnectScreen(WizardScreen):
    STEP = "connect"
    TITLE_TEXT = "Connect to Neon"
    CAN_GO_BACK = False
    # on_mount gives the focus: Textual's auto focus would first give it to the body, then see it taken
    # away, and each move restyles the screen before its first paint.
    AUTO_FOCUS = ""

    def compose_body(self) -> ComposeResult:
        if self.wizard.config.intro:
            yield Static(safe(self.wizard.config.intro), id="intro", classes="callout")
        if self.wizard.config.intro and self.wizard.config.starting is not None:
            # The demo: the story is read while the sandbox starts behind it (see WizardApp.prepare).
            yield Static("Starting the sandbox (a local Neon with a real PostgreSQL)…", id="key-source")
        elif self.wizard.config.intro:
            yield Static("The sandbox's API key is ready (not shown).", id="key-source")
        elif self.wizard.config.api_key:
            yield Static("Using the API key from NEON_API_KEY (not shown). Checking it…", id="key-source")
        else:
            yield Static("Paste a Neon API key (Account settings → API keys). It is not shown or stored.")
            yield Input(password=True, placeholder="napi_…", id="api-key")
        yield Static("", id="status")

    def compose_actions(self) -> ComposeResult:
        config = self.wizard.config
        yield Button("Quit", id="quit")
        if config.intro and config.starting is not None:
            yield Button("Starting…", id="next", variant="primary", disabled=True)
            return
        label = "Begin" if config.intro else "Check and continue"
        yield Button(label, id="next", variant="primary", disabled=bool(config.api_key and not config.intro))

    def on_mount(self) -> None:
        config = self.wizard.config
        if config.intro and config.starting is not None:
            # After the first paint: the story is on screen before the sandbox's imports and start take the loop.
            self.call_after_refresh(self.query_one("#body").focus)  # after the paint: a focus restyles
            self.call_after_refresh(self.wizard.prepare)
        elif config.intro:
            # The story first: the user reads what happened, then starts.
            self.query_one("#next", Button).focus()
        elif config.api_key:
            self.query_one("#body").focus()
            self.wizard.connect(config.api_key)
        else:
            self.query_one("#api-key", Input).focus()

    def starting(self, text: str) -> None:
        """The sandbox's progress, under the story."""
        self.query_one("#key-source", Static).update(safe(text))

    def ready(self) -> None:
        """The sandbox is up: the story in full, and Begin."""
        config = self.wizard.config
        self.query_one("#intro", Static).update(safe(config.intro or ""))
        self.query_one("#key-source", Static).update("The sandbox is ready; its API key is set (not shown).")
        button = self.query_one("#next", Button)
        button.label, button.disabled = "Begin", False
        button.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pressed_next()

    def pressed_next(self) -> None:
        field = self.query("#api-key")
        key = field.first(Input).value.strip() if field else self.wizard.config.api_key or ""
        if not key:
            self.show_status("Paste the API key first.", error=True)
            return
        self.show_status("Checking the key…")
        self.wizard.connect(key)

    def pressed_quit(self) -> None:
        self.app.exit(3)

    def show_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(safe(text))
        status.set_class(error, "error")
        if error:
            self.query_one("#next", Button).disabled = False

    def ask_for_key(self) -> None:
        """After a refusal the key from the environment (or the sandbox) is no use: offer a field for another."""
        if self.query("#api-key"):
            self.query_one("#api-key", Input).focus()
            return
        field = Input(password=True, placeholder="napi_… (another key)", id="api-key")
        self.query_one("#body").mount(field, before=self.query_one("#status"))
        field.focus()

    def work_failed(self, name: str, text: str) -> None:
        if name == "prepare":  # the demo's sandbox did not start: nothing to begin; Quit stays
            self.starting(
                f"The sandbox could not start: {text}\nQuit, then run `recovery-wizard demo` again."
            )
            return
        self.show_status(text, error=True)
