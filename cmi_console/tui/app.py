"""The console: `cmi` (or `cmi tui`) opens it; `cmi demo` opens it on the demo."""

from __future__ import annotations

import os
from functools import partial

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.reactive import reactive

from cmi_console.core.errors import CmiError, Denied
from cmi_console.core.printable import printable
from cmi_console.services.context import Context
from cmi_console.tui.audit_screen import AuditScreen
from cmi_console.tui.base import worker
from cmi_console.tui.dashboard import DashboardScreen
from cmi_console.tui.deployments_screen import DeploymentsScreen
from cmi_console.tui.incidents_screen import IncidentsScreen
from cmi_console.tui.models import ModelScreen, ModelsScreen
from cmi_console.tui.policies_screen import PoliciesScreen
from cmi_console.tui.reviews import ReviewQueueScreen
from cmi_console.tui.session import Session
from cmi_console.tui.signin import ChoosePrincipal, Passphrase

SECTIONS = {
    "dashboard": ("Dashboard", DashboardScreen),
    "models": ("Models", ModelsScreen),
    "reviews": ("Review queue", ReviewQueueScreen),
    "audit": ("Audit log", AuditScreen),
    "incidents": ("Incidents", IncidentsScreen),
    "deployments": ("Deployments", DeploymentsScreen),
    "policies": ("Policies", PoliciesScreen),
}


class Navigate(Provider):
    """Command palette: every screen, and every model by name."""

    async def search(self, query: str) -> Hits:
        app: CmiApp = self.app  # type: ignore[assignment]
        matcher = self.matcher(query)
        for mode, (title, _cls) in SECTIONS.items():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(app.switch_mode, mode))
        for name in app.model_names:
            label = f"Open model {name}"
            score = matcher.match(label)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(label), partial(app.push_screen, ModelScreen(name))
                )


class CmiApp(App[None]):
    # the outcome of the log check, run in the background at start: the
    # header and the dashboard's health line watch it
    verify_status: reactive[str] = reactive("log not verified yet")
    verify_failed = False  # set with verify_status: the log does not verify, or the check failed
    CSS_PATH = "cmi.tcss"
    TITLE = "cmi-console"
    MODES = {mode: cls for mode, (_title, cls) in SECTIONS.items()}
    COMMANDS = App.COMMANDS | {Navigate}
    # ids let users remap keys (Textual keymaps)
    BINDINGS = [
        Binding("d", "switch_mode('dashboard')", "Dashboard", id="cmi.dashboard"),
        Binding("m", "switch_mode('models')", "Models", id="cmi.models"),
        Binding("r", "switch_mode('reviews')", "Reviews", id="cmi.reviews"),
        Binding("l", "switch_mode('audit')", "Audit log", id="cmi.audit"),
        Binding("i", "switch_mode('incidents')", "Incidents", id="cmi.incidents"),
        Binding("e", "switch_mode('deployments')", "Deployments", id="cmi.deployments"),
        Binding("o", "switch_mode('policies')", "Policies", id="cmi.policies"),
        Binding("escape", "back", "Back", id="cmi.back"),
        Binding("question_mark", "help", "Keys", id="cmi.help"),
        Binding("t", "toggle_theme", "Light/dark", id="cmi.theme"),
        Binding("q", "quit", "Quit", id="cmi.quit"),
    ]

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification is plain text, whatever a widget asks: messages
        carry names, file paths and a verify finding's view of a tampered entry,
        and Rich markup in them raised MarkupError or styled the text."""
        del markup
        super().notify(
            printable(message), title=title, severity=severity, timeout=timeout, markup=False
        )

    def __init__(
        self, ctx: Context, *, passphrase: bytes | None = None, verify: bool = True
    ) -> None:
        super().__init__()
        self.session = Session(ctx)
        self.initial_actor = ctx.actor
        self.initial_passphrase = passphrase
        self.run_verify = verify
        self.model_names: list[str] = []

    def on_mount(self) -> None:
        self.switch_mode("dashboard")
        # what a committed write could not finish (the witness not updated, a
        # hook delivery that failed), from whichever worker or thread made it
        self.set_interval(1.0, self._show_notices)
        self._load_names()
        if self.run_verify:
            self._verify()
        if self.initial_actor:
            self._sign_in(self.initial_actor, self.initial_passphrase)
        else:
            self._offer_principals()

    def action_help(self) -> None:
        """Every key of the current screen, in the help panel."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    # --- who am I -------------------------------------------------------------

    @worker()
    def _offer_principals(self) -> None:
        names = self.session.principals_with_keys()
        self.call_from_thread(self._choose, names)

    def _choose(self, names: list[str]) -> None:
        if not names:
            self._signed_in()
            return
        # CMI_KEY_PASSPHRASE, when set, is tried first; a wrong one prompts
        self.push_screen(
            ChoosePrincipal(names), lambda name: self._sign_in(name, self.initial_passphrase)
        )

    def _sign_in(self, name: str | None, passphrase: bytes | None, error: str = "") -> None:
        if name is None:
            self.session.sign_in(None)
            self._signed_in()
            return
        if (
            passphrase is None
            and self.session.has_key(name)
            and self.session.key_is_encrypted(name)
        ):
            self.push_screen(Passphrase(name, error), lambda secret: self._unlock(name, secret))
            return
        self._unlock(name, passphrase)

    def _unlock(self, name: str, secret: bytes | None) -> None:
        # escape at the passphrase prompt: that principal, read-only
        locked = (
            secret is None and self.session.has_key(name) and self.session.key_is_encrypted(name)
        )
        try:
            self.session.sign_in(name, secret, read_only=locked)
        except Denied as exc:
            if self.session.key_is_encrypted(name):  # a wrong passphrase: ask again
                self._sign_in(name, None, exc.message)
                return
            # a key that no passphrase can unlock (open to others): asking again
            # had recursed until the console died; that principal, read-only
            self.notify(exc.message, severity="error")
            self.session.sign_in(name, None, read_only=True)
        except CmiError as exc:
            self.notify(exc.message, severity="error")
            self.session.sign_in(None)
        self._signed_in()

    def _signed_in(self) -> None:
        self._update_title()
        reload = getattr(self.screen, "reload", None)
        if reload is not None:
            reload()

    def _update_title(self) -> None:
        self.sub_title = f"{self.session.describe()} · {self.verify_status}"

    # --- background -------------------------------------------------------------

    def _show_notices(self) -> None:
        for notice in self.session.ctx.take_notices():
            self.notify(notice, severity="warning", timeout=30)

    @worker()
    def _load_names(self) -> None:
        from cmi_console.services import registry

        names = [m["name"] for m in registry.list_models(self.session.ctx)]
        self.call_from_thread(setattr, self, "model_names", names)

    @worker(exclusive=True, group="verify")
    def _verify(self) -> None:
        from cmi_console.services.verify import verify

        try:
            report = verify(self.session.ctx)
            late = report.stamped_out_of_order  # not a fault: see `cmi audit verify`'s note
            status = (
                f"log verifies ({report.entries} entries"
                + (f"; {late} stamped out of order)" if late else ")")
                if report.ok
                else f"LOG DOES NOT VERIFY: {report.findings[0]}"
            )
            failed = not report.ok
        except CmiError as exc:
            status, failed = f"log check failed: {exc.message}", True
        self.call_from_thread(self._verified, status, failed)

    def _verified(self, status: str, failed: bool) -> None:
        self.verify_failed = failed
        self.verify_status = status

    def watch_verify_status(self) -> None:
        self._update_title()


def run(ctx: Context) -> None:
    secret = os.environ.get("CMI_KEY_PASSPHRASE")
    CmiApp(ctx, passphrase=secret.encode() if secret else None).run()
