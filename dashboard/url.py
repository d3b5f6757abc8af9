"""URL <-> widget <-> values for every page: widget kinds, sections, and the round trip.

A page declares its settings as :class:`dashboard.settings.Field` s (in
:mod:`dashboard.url_fields`) and its sidebar as :class:`Section` s naming them.
:func:`form` runs the round trip on every page run: each field's widget starts
from the URL, the page's memory or its default (:func:`dashboard.settings.load`,
which writes every value back to session state so the browser is told the truth),
the sections are drawn, invalid URL values are noted, and the settings that
matter are written back to the URL.

Widgets never receive ``value=``: session state is the one source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import settings, state
from dashboard.safe_text import md
from dashboard.settings import Field, number
from ebmcore.energies import Param

__all__ = [
    "AUTO",
    "EPS_MAX",
    "Section",
    "Stage",
    "eps_text",
    "eps_widget",
    "form",
    "log_select",
    "number_box",
    "param_widget",
    "radio",
    "relevant_values",
    "select",
    "show_notes",
    "text_box",
    "toggle",
    "values_of",
    "write_url",
]

ss = st.session_state
Widget = Callable[[str, str, Mapping[str, Any]], "str | None"]  # (page, name, values) -> error
Stage = Callable[[Mapping[str, Any]], Sequence[Field]]  # values so far -> more fields
OnChange = Callable[[str], None]  # called with the page id


@dataclass(frozen=True)
class Section:
    """A titled group of the sidebar: the fields it draws, in order."""

    title: str | Callable[[Mapping[str, Any]], str]  # a heading, or one computed from values
    names: tuple[str, ...]  # field names drawn here (missing or irrelevant ones are skipped)
    expander: bool = False  # folded away under its title
    note: Callable[[Mapping[str, Any]], str | None] | None = None  # a caption after the fields


# -- widget kinds -----------------------------------------------------------------------


def _cb(on_change: OnChange | None, page: str) -> Callable[[], None] | None:
    return None if on_change is None else (lambda: on_change(page))


def select(label: str, options: Sequence[Any], *, fmt: Callable[[Any], str] | None = None,
           help: str | None = None, on_change: OnChange | None = None) -> Widget:
    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        st.selectbox(label, list(options), key=state.widget_key(page, name), help=help,
                     format_func=fmt or str, on_change=_cb(on_change, page))

    return draw


def radio(label: str, options: Sequence[Any], *, fmt: Callable[[Any], str] | None = None,
          help: str | None = None, on_change: OnChange | None = None) -> Widget:
    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        st.radio(label, list(options), key=state.widget_key(page, name), horizontal=True,
                 format_func=fmt or str, help=help, on_change=_cb(on_change, page))

    return draw


def toggle(label: str, *, help: str | None = None,
           enabled: Callable[[Mapping[str, Any]], bool] | None = None,
           forced: Any = None) -> Widget:
    """A toggle; where ``enabled`` says no, it is greyed out and holds ``forced``."""

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        wk = state.widget_key(page, name)
        on = enabled is None or enabled(values)
        if not on:
            ss[wk] = forced
        st.toggle(label, key=wk, disabled=not on, help=help)

    return draw


def number_box(label: str, *, help: str | None = None, **kw: Any) -> Widget:
    """A number input (``kw``: min_value, max_value, step, format)."""

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        st.number_input(label, key=state.widget_key(page, name), help=help, **kw)

    return draw


def text_box(label: str, *, help: str | None = None, height: int | None = None) -> Widget:
    """A one-line text input, or a text area when ``height`` is given."""

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        if height is None:
            st.text_input(label, key=state.widget_key(page, name), help=help)
        else:
            st.text_area(label, key=state.widget_key(page, name), help=help, height=height)

    return draw


def _fmt_num(v: float) -> str:
    if v >= 1000 and float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:g}"


def log_select(label: str, grid: Sequence[float], *, help: str | None = None,
               fmt: Callable[[Any], str] = _fmt_num) -> Widget:
    """A select-slider on a log-spaced grid that also holds the current value."""

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        wk = state.widget_key(page, name)
        options = sorted(set(grid) | {ss[wk]})
        st.select_slider(label, options=options, key=wk, help=help, format_func=fmt)

    return draw


EPS_GRID = tuple(sorted({round(m * 10.0**e, 6) for e in range(-3, 1)
                         for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)} | {10.0}))
AUTO = "auto"  # the eps text that asks for an automatic step size
EPS_MAX = 10.0


def eps_text(t: str) -> str:
    """Parser of the eps field: a number in (0, EPS_MAX], or auto."""
    if t.strip().lower() == AUTO:
        return AUTO
    number(positive=True, hi=EPS_MAX)(t)
    return t.strip()


def eps_widget(page: str, name: str, values: Mapping[str, Any]) -> str | None:
    """A log slider (with "auto" first) and an exact field for eps, kept in step."""
    tk, sk = state.widget_key(page, "eps"), state.widget_key(page, "eps_slider")
    t = str(ss[tk]).strip()
    try:
        ss[sk] = AUTO if t.lower() == AUTO else float(eps_text(t))
    except ValueError:
        ss.setdefault(sk, AUTO)

    def from_slider() -> None:
        v = ss[sk]
        ss[tk] = AUTO if v == AUTO else f"{v:g}"

    nums = sorted(set(EPS_GRID) | ({ss[sk]} - {AUTO}))
    st.select_slider("step size ε", options=[AUTO, *nums], key=sk, on_change=from_slider,
                     format_func=lambda v: str(v) if v == AUTO else f"{v:g}",
                     help="Langevin step size on a log scale; type an exact value below. "
                          "For HMC, the leapfrog step. auto: chosen from the target (SGLD: "
                          "its curvature; MALA, HMC: tuned towards an acceptance rate during "
                          "burn-in).")
    st.text_input("ε (exact)", key=tk, help="Any number > 0 (at most 10), or auto.")
    try:
        eps_text(str(ss[tk]))
    except ValueError as exc:
        return f"eps: {exc}"
    return None


def param_widget(p: Param) -> Widget:
    """The widget of a target parameter: a number input in its range, or a text field for
    a vector or matrix."""

    def draw(page: str, name: str, values: Mapping[str, Any]) -> None:
        wk, label = state.widget_key(page, name), name.removeprefix("p.")
        if isinstance(p.default, tuple):
            hint = "row-major a, b, c, d" if p.positive_definite else f"{p.size} numbers"
            st.text_input(f"{label} ({hint})", key=wk, help=p.doc)
            return
        ss[wk] = (int if p.integer else float)(ss[wk])  # number_input wants one numeric type
        if p.integer:
            st.number_input(label, min_value=int(p.low) if p.low is not None else None,
                            max_value=int(p.high) if p.high is not None else None, step=1,
                            key=wk, help=p.doc)
        else:
            span = (p.high - p.low) if p.low is not None and p.high is not None else 10.0
            step = 10.0 ** math.floor(math.log10(span / 20)) if span > 0 else 0.1
            st.number_input(label, min_value=p.low, max_value=p.high, step=step, format="%g",
                            key=wk, help=p.doc)

    return draw


# -- the round trip -----------------------------------------------------------------------


def values_of(page: str, fields: Sequence[Field]) -> dict[str, Any]:
    """Current widget values of ``fields``."""
    return {f.name: ss[state.widget_key(page, f.name)] for f in fields
            if state.widget_key(page, f.name) in ss}


def relevant_values(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that matter (those the URL holds)."""
    return {f.name: values[f.name] for f in fields if f.name in values and f.matters(values)}


def show_notes(page: str, notes: list[str], values: dict[str, Any]) -> None:
    """Show URL notes; they stay until the user changes a setting."""
    if notes:
        state.put(ss, "notes", page, (notes, dict(values)))
    kept = state.get(ss, "notes", page)
    if not kept:
        return
    msgs, at = kept
    if at != values:
        state.pop(ss, "notes", page)
        return
    st.warning("**Some settings in the link were not valid and fell back to defaults:**\n\n"
               + "\n".join(f"- {md(m)}" for m in msgs), icon=":material/link:")


def write_url(page: str, fields: Sequence[Field], values: dict[str, Any]) -> None:
    """Put the settings of ``values`` that matter in the URL and remember them for the page."""
    q = settings.to_query(fields, values)
    if st.query_params.to_dict() != q:
        st.query_params.from_dict(q)
    settings.mark_seen(ss, page, q)
    settings.remember(ss, page, values)


def _draw(page: str, sections: Sequence[Section], fields: Sequence[Field]
          ) -> tuple[dict[str, str], dict[str, Any]]:
    by_name = {f.name: f for f in fields}
    errors: dict[str, str] = {}
    slots: dict[str, Any] = {}
    for sec in sections:
        values = values_of(page, fields)
        title = sec.title(values) if callable(sec.title) else sec.title
        box = st.expander(title, expanded=False) if sec.expander else st.container()
        if not sec.expander and title:
            box.markdown(f"#### {title}")
        with box:
            for name in sec.names:
                f = by_name.get(name)
                if f is None or f.widget is None:
                    continue
                now = values_of(page, fields)
                if not (f.keep_drawn or f.matters(now)):
                    continue
                err = f.widget(page, name, now)
                if err:
                    st.error(md(err), icon=":material/error:")
                    errors[name] = err
            note = sec.note(values_of(page, fields)) if sec.note else None
            if note:
                st.caption(note)
            slots[title] = st.empty()
    return errors, slots


def form(page: str, stages: Sequence[Stage], sections: Sequence[Section]
         ) -> tuple[list[Field], dict[str, Any], dict[str, str], dict[str, Any]]:
    """Load, draw and note a page's settings.

    Returns the fields loaded, their values, the widgets' error messages, and one empty
    slot per section, drawn after its fields (for messages about that section).

    ``stages`` load in order, each given the values loaded before it, so that a field's
    default may depend on another setting (a target's parameters and sampler settings, a
    training method's step size).  The caller writes the URL (:func:`write_url`) once it
    knows which values are valid.
    """
    fields: list[Field] = []
    notes: list[str] = []
    query = st.query_params.to_dict()
    for stage in stages:
        more = list(stage(values_of(page, fields)))
        notes += settings.load(ss, page, more, query)
        fields += more
    with st.sidebar:
        errors, slots = _draw(page, sections, fields)
    values = values_of(page, fields)
    show_notes(page, notes, values)
    return fields, values, errors, slots
