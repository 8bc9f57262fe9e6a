"""The banner at the top of every screen: where refunds would go, and who is sending them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.widget import Widget


@dataclass(frozen=True, slots=True)
class BannerInfo:
    """What the banner shows; the app holds one in its ``banner_info`` reactive."""

    profile: str
    #: "sandbox" or "live"; None until the session is open.
    environment: str | None = None
    refunds_enabled: bool = False
    operator: str = ""
    failed: int = 0
    unknown: int = 0
    #: Refunds that completed and then came back: the customer was not paid after all.
    reversed: int = 0
    #: Refunds their provider executed twice: the customer was paid twice.
    paid_twice: int = 0
    #: Other roles' refunds awaiting this role's approval (an approver on a team ledger).
    awaiting: int = 0
    #: Shown instead of the mode while the session opens, when it could not open, or while
    #: its team ledger is lost.
    note: str | None = None

    @classmethod
    def opening(cls, profile_name: str | None) -> BannerInfo:
        name = profile_name or "default profile"
        return cls(profile=name, note=f"opening {name}...")

    def with_counts(self, failed: int, unknown: int, reversed: int, paid_twice: int, awaiting: int = 0) -> BannerInfo:
        return replace(self, failed=failed, unknown=unknown, reversed=reversed, paid_twice=paid_twice,
                       awaiting=awaiting)  # fmt: skip


class Banner(Widget):
    """One line, always visible: environment, profile, mode, operator, problem counts.

    Reads the app's ``banner_info`` reactive, so a screen only has to ``yield Banner()``.
    Every fact is a word, so it reads without colour (NO_COLOR, monochrome terminals).
    """

    DEFAULT_CSS = """
    Banner {
        dock: top;
        height: 1;
        width: 100%;
        background: $panel;
        color: $foreground;
    }
    Banner.-sandbox { background: $primary-darken-2; color: $text; }
    Banner.-live { background: $error-darken-2; color: $text; text-style: bold; }
    Banner.-problem { background: $warning-darken-3; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "banner_info", self._show, init=True)

    def _show(self, info: BannerInfo) -> None:
        self.set_class(info.environment == "sandbox", "-sandbox")
        self.set_class(info.environment == "live", "-live")
        self.set_class(info.environment is None and info.note is not None, "-problem")
        self.refresh()

    def render(self) -> Text:
        info: BannerInfo = self.app.banner_info
        left = Text(no_wrap=True, overflow="ellipsis")
        if info.environment == "live":
            left.append(" LIVE ", style="bold reverse red")
        elif info.environment == "sandbox":
            left.append(" SANDBOX ", style="bold")
        left.append(f" {info.profile} ")
        if info.note is not None:  # opening, could not open, or (a session open) ledger lost
            left.append(f" {info.note}", style="italic" if info.environment is None else "bold reverse")
        elif info.refunds_enabled:
            left.append(" REFUNDS ENABLED ", style="bold")
        else:
            left.append(" READ-ONLY ", style="bold reverse")
        if info.operator:
            left.append(f" {info.operator}")
        right = self._counts(info)
        room = self.size.width - right.cell_len - 2  # a space always parts the two sides
        left.truncate(max(room, 0), overflow="ellipsis", pad=True)
        return Text.assemble(left, " ", right, " ")

    @staticmethod
    def _counts(info: BannerInfo) -> Text:
        if info.environment is None:
            return Text()
        counts = Text(no_wrap=True)
        counts.append(f"FAILED {info.failed}", style="bold reverse" if info.failed else "")
        counts.append("  ")
        counts.append(f"UNKNOWN {info.unknown}", style="bold reverse" if info.unknown else "")
        if info.reversed:
            counts.append("  ")
            counts.append(f"REVERSED {info.reversed}", style="bold reverse")
        if info.paid_twice:
            counts.append("  ")
            counts.append(f"PAID TWICE {info.paid_twice}", style="bold reverse")
        if info.awaiting:
            counts.append("  ")
            counts.append(f"TO APPROVE {info.awaiting}", style="bold reverse")
        return counts
