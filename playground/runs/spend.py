"""What a user spent, day by day over the last 30 days, laid out for a server-drawn SVG chart.

The money counted is what budgets count (runs.limits): the runs `counted_here`, deleted ones
included, because deleting a run never gives its cost back. One aggregate query; the
geometry is worked out here so the template only places shapes (no chart library, no JS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Case, IntegerField, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from playground.runs.history import start_of
from playground.runs.models import Run
from playground.runs.money import MICROS, micros_from_usd, usd

DAYS = 30

# The drawing, in SVG user units (it scales to the page's width).
WIDTH, LEFT, RIGHT = 960, 60, 10
DAILY_TOP, DAILY_HEIGHT = 24, 100  # bars: each day's estimate and bill
MONTH_TOP, MONTH_HEIGHT = 172, 44  # the line: this month so far, against the budget
HEIGHT = MONTH_TOP + MONTH_HEIGHT + 8
PLOT_WIDTH = WIDTH - LEFT - RIGHT
SLOT = PLOT_WIDTH / DAYS


@dataclass(frozen=True)
class Day:
    day: date
    estimated: int  # micro-dollars, every run's estimate
    billed: int  # what was billed (runs still in flight add nothing yet)
    committed: int  # billed, else the estimate: what the budget counts


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass
class SpendChart:
    days: list[Day]  # oldest first, one per day, today last
    month_micros: int  # this month so far (billed, else estimated)
    budget_micros: int | None
    # Each series' bars as one SVG path (a few bytes a bar; the table has the figures).
    estimated_path: str = ""
    billed_path: str = ""
    daily_ticks: list[Tick] = field(default_factory=list)
    month_ticks: list[Tick] = field(default_factory=list)
    month_points: str = ""  # an SVG polyline's points
    month_start_x: float = LEFT
    budget_y: float | None = None
    date_labels: list[tuple[float, str]] = field(default_factory=list)

    # For the template's fixed geometry.
    width = WIDTH
    height = HEIGHT
    left = LEFT
    right_edge = WIDTH - RIGHT
    daily_top = DAILY_TOP
    daily_bottom = DAILY_TOP + DAILY_HEIGHT
    month_top = MONTH_TOP
    month_bottom = MONTH_TOP + MONTH_HEIGHT

    @property
    def estimated_micros(self) -> int:
        return sum(day.estimated for day in self.days)

    @property
    def billed_micros(self) -> int:
        return sum(day.billed for day in self.days)

    @property
    def spent_days(self) -> list[Day]:
        return [day for day in self.days if day.estimated or day.billed]

    @property
    def budget_left_micros(self) -> int | None:
        if self.budget_micros is None:
            return None
        return max(0, self.budget_micros - self.month_micros)


def spend_chart(user: User, today: date | None = None) -> SpendChart:
    today = today or timezone.localdate()
    first = today - timedelta(days=DAYS - 1)
    month_start = today.replace(day=1)
    # The month may have begun before the window (on the 31st): its first day still counts.
    since = min(first, month_start)
    starts = [start_of(since + timedelta(days=n)) for n in range((today - since).days + 2)]
    # Each run's day (in the instance's time zone) by comparing with each day's start: no
    # date conversion per row (TruncDate is a Python function per row on SQLite).
    day_number = Case(
        *[
            When(created_at__gte=start, then=Value(n))
            for n, start in reversed(list(enumerate(starts[:-1])))
        ],
        output_field=IntegerField(),
    )
    rows = (
        Run.objects.for_user(user)
        .counted_here()
        .filter(created_at__gte=starts[0], created_at__lt=starts[-1])
        .annotate(day_number=day_number)
        .values("day_number")
        .annotate(
            estimated=Sum("estimated_cost_micros"),
            billed=Sum("billed_cost_micros"),
            committed=Sum(Coalesce("billed_cost_micros", "estimated_cost_micros")),
        )
        .order_by("day_number")
    )
    by_day = {since + timedelta(days=row["day_number"]): row for row in rows}
    days = []
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        days.append(
            Day(
                day=day,
                estimated=row.get("estimated") or 0,
                billed=row.get("billed") or 0,
                committed=row.get("committed") or 0,
            )
        )
    month_micros = sum(row["committed"] or 0 for day, row in by_day.items() if day >= month_start)
    budget = micros_from_usd(settings.MONTHLY_BUDGET_USD) if settings.MONTHLY_BUDGET_USD else None
    chart = SpendChart(days=days, month_micros=month_micros, budget_micros=budget)
    _lay_out(chart, month_start, before_window=_spent_before(by_day, month_start, first))
    return chart


def _spent_before(by_day: dict, month_start: date, first: date) -> int:
    return sum(row["committed"] or 0 for day, row in by_day.items() if month_start <= day < first)


def _lay_out(chart: SpendChart, month_start: date, *, before_window: int) -> None:
    # Bars: both series on one scale, so a bill above its estimate shows as a taller bar.
    top = nice_ceiling(max([d.estimated for d in chart.days] + [d.billed for d in chart.days]))
    bottom = DAILY_TOP + DAILY_HEIGHT
    estimated, billed = [], []
    for index, day in enumerate(chart.days):
        # Side by side in the day's slot, a little gap around each.
        x = LEFT + index * SLOT
        estimated.append(_bar(x + SLOT * 0.06, bottom, DAILY_HEIGHT * day.estimated / top))
        billed.append(_bar(x + SLOT * 0.52, bottom, DAILY_HEIGHT * day.billed / top))
    chart.estimated_path = "".join(estimated)
    chart.billed_path = "".join(billed)
    chart.daily_ticks = [
        Tick(y=bottom - DAILY_HEIGHT * share, label=usd(round(top * share), places=2))
        for share in (0, 0.5, 1)
    ]
    for index, day in enumerate(chart.days):
        if (DAYS - 1 - index) % 7 == 0:  # today, and a week apart back from it
            chart.date_labels.append((LEFT + (index + 0.5) * SLOT, day_label(day.day)))

    # The month so far: a running total from the 1st, against the budget (both monthly).
    month_top = nice_ceiling(max(chart.month_micros, chart.budget_micros or 0))
    month_bottom = MONTH_TOP + MONTH_HEIGHT
    points: list[str] = []
    total = before_window
    for index, day in enumerate(chart.days):
        if day.day < month_start:
            continue
        if not points:  # the line starts at the 1st (or the window's edge) with what's spent
            chart.month_start_x = LEFT + index * SLOT
            points.append(
                _point(chart.month_start_x, month_bottom - MONTH_HEIGHT * total / month_top)
            )
        total += day.committed  # and reaches each day's total at the end of its slot
        points.append(
            _point(LEFT + (index + 1) * SLOT, month_bottom - MONTH_HEIGHT * total / month_top)
        )
    chart.month_points = " ".join(points)
    chart.month_ticks = [
        Tick(y=month_bottom - MONTH_HEIGHT * share, label=usd(round(month_top * share), places=2))
        for share in (0, 1)
    ]
    if chart.budget_micros is not None:
        chart.budget_y = month_bottom - MONTH_HEIGHT * chart.budget_micros / month_top


def _point(x: float, y: float) -> str:
    return f"{_num(x)},{_num(y)}"


def _bar(x: float, bottom: float, height: float) -> str:
    """A bar standing on `bottom`, as path commands ('' for none)."""
    if height <= 0:
        return ""
    return f"M{_num(x)} {_num(bottom)}v-{_num(height)}h{_num(SLOT * 0.42)}v{_num(height)}z"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def nice_ceiling(micros: int) -> int:
    """The smallest of $1, $2, $2.50, $5 × 10ⁿ at or above `micros` (an axis top that reads
    well); $1 when there is nothing to show."""
    if micros <= 0:
        return MICROS
    value = Decimal(micros) / MICROS
    scale = Decimal(10) ** (value.adjusted())
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if value <= step * scale:
            return int(step * scale * MICROS)
    return int(10 * scale * MICROS)  # pragma: no cover (10 × scale is always enough)
