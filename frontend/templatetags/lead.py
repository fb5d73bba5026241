"""Template helpers for the lead's pages: figures rounded, a missing one as "—" with the reason in its tooltip."""

from django import template
from django.utils.html import format_html

from frontend.dashboard import Metric, lead_projects_for, split_item_counts
from rewards.metrics import FLAG_MEANINGS, LEVEL_MEANINGS

register = template.Library()

DASH = "—"


def _share(value: float) -> str:
    return f"{100 * value:.0f} %"


def _plain(value: float, kind: str) -> str:
    return _share(value) if kind == "share" else f"{value:.2f}"


@register.filter
def metric(m: Metric) -> str:
    """A Metric as a table cell's content: the rounded value with its exact value, interval and count as a
    tooltip, or "—" whose tooltip says why there is no value."""
    if m.value is None:
        return format_html('<span class="null" title="{}">{}</span>', m.reason or "No value.", DASH)
    detail = [f"{m.value:.4f}" if m.kind == "kappa" else f"{100 * m.value:.1f} %"]
    if m.low is not None and m.high is not None:
        detail.append(f"95 % CI {_share(m.low)}–{_share(m.high)}")
    if m.n is not None:
        detail.append(f"n = {m.n:,}")
    css = f"num band-{m.band}" if m.band else "num"
    return format_html('<span class="{}" title="{}">{}</span>', css, ", ".join(detail), _plain(m.value, m.kind))


@register.filter
def share(value: float | None, why: str = "") -> str:
    if value is None:
        return format_html('<span class="null" title="{}">{}</span>', why or "No value.", DASH)
    return _share(value)


@register.filter
def count(value: int | None, why: str = "") -> str:
    if value is None:
        return format_html('<span class="null" title="{}">{}</span>', why or "No value.", DASH)
    return f"{value:,}"


@register.filter
def decimal(value: float | None, places: int = 2) -> str:
    if value is None:
        return format_html('<span class="null" title="{}">{}</span>', "Nothing to compute on.", DASH)
    return f"{value:.{int(places)}f}"


@register.filter
def p_value(value: float | None) -> str:
    if value is None:
        return format_html('<span class="null" title="{}">{}</span>', "No a/b choices to test.", DASH)
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


@register.simple_tag
def lead_project_ids(user) -> set[int]:
    """Ids of the projects whose dashboard the user may open (for the header's and home page's links)."""
    return {project.pk for project in lead_projects_for(user=user)}


@register.filter
def words(code: str) -> str:
    """A flag code as words: "position_bias" -> "position bias"."""
    return code.replace("_", " ")


@register.filter
def flag_meaning(code: str) -> str:
    """What a flag code means, in a sentence shown on the page (not only in a tooltip)."""
    return FLAG_MEANINGS.get(code, "")


@register.filter
def level_meaning(level: str) -> str:
    return LEVEL_MEANINGS.get(level, "")


@register.inclusion_tag("frontend/lead/_flag_legend.html")
def flag_legend() -> dict:
    """Every level and flag code with its meaning, for the pages' legend."""
    return {"flag_levels": list(LEVEL_MEANINGS.items()), "flag_meanings": list(FLAG_MEANINGS.items())}


@register.simple_tag
def split_counts(project) -> list:
    """(batch, split items in its latest snapshot) for every batch of the project."""
    return split_item_counts(project=project)
