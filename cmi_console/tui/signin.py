"""Choosing who you are, and unlocking your key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList


class ChoosePrincipal(ModalScreen[str | None]):
    """Offers the principals whose keys are on this machine; escape = read-only."""

    BINDINGS = [("escape", "dismiss(None)", "Read-only")]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Who are you? (keys on this machine; escape: read-only)")
            yield OptionList(*self.names, id="principals")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.names[event.option_index])


class Passphrase(ModalScreen[bytes | None]):
    """Unlocks an encrypted key; the passphrase is never shown or logged."""

    BINDINGS = [("escape", "dismiss(None)", "Read-only")]

    def __init__(self, name: str, error: str = "") -> None:
        super().__init__()
        self.principal = name
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Passphrase for {self.principal}'s key")
            if self.error:
                yield Label(self.error, classes="error", markup=False)
            yield Input(password=True, id="passphrase")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.encode() or None)
