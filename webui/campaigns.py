"""Campaigns: pages and JSON API to launch a monitoring or self-assessment round, draw the
spot-check sample, follow each project's case, and close the round."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import login_required

from engine.campaigns import KINDS
from engine.errors import Conflict, InvalidData, PermissionDenied

from . import api
from .api import _body, _int_arg, token_required
from .auth import current_actor
from .context import core

bp = Blueprint("campaigns", __name__)


def _year(raw) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) == 4:
        return int(raw.strip())
    raise InvalidData("the year is not valid", {"year": "A four-digit year."})


def _date(raw, field: str) -> date | None:
    if raw in (None, ""):
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise InvalidData(f"'{field}' is not a date", {field: "A date as YYYY-MM-DD."}) from None


def _may_run(actor) -> None:
    # Permission before validation: whoever may not run campaigns learns nothing about the input.
    if not core().campaigns.may_run(actor):
        raise PermissionDenied("only the performance management section runs campaigns")


def _launch(actor, body: dict):
    _may_run(actor)
    kind = body.get("kind")
    if kind not in KINDS:
        raise InvalidData("unknown campaign kind", {"kind": f"One of {', '.join(KINDS)}."})
    codes = body.get("key_projects") or []
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise InvalidData("key_projects must be a list of project codes", {"key_projects": "A list of codes."})
    title = body.get("title")
    if title is not None and not isinstance(title, str):
        raise InvalidData("title must be text", {"title": "Text."})
    return core().campaigns.launch(actor, kind, _year(body.get("year")),
                                   _date(body.get("cutoff_date"), "cutoff_date"), codes, title or None)


def _draw(actor, campaign_id: int, body: dict):
    _may_run(actor)
    ratio = body.get("ratio")
    if ratio in ("", None):
        ratio = None
    else:
        try:
            ratio = float(ratio)
        except (TypeError, ValueError):
            raise InvalidData("the sample ratio must be a number", {"ratio": "A number between 0 and 1."}) from None
    seed = body.get("seed") or None
    return core().campaigns.draw(actor, campaign_id, ratio, seed)


# ---- pages -------------------------------------------------------------------------------

@bp.route("/campaigns", methods=["GET", "POST"])
@login_required
def campaigns():
    actor = current_actor()
    service = core().campaigns
    year = _int_arg("year", core().clock.now().year, 2000, 2100)
    errors, status, form = {}, 200, {}
    if request.method == "POST":
        form = {"kind": request.form.get("kind"), "year": request.form.get("year"),
                "cutoff_date": request.form.get("cutoff_date"), "title": request.form.get("title"),
                "key_projects": request.form.getlist("key_projects")}
        try:
            campaign = _launch(actor, form)
        except (InvalidData, Conflict) as exc:
            errors, status = {"_": exc.message, **exc.details}, exc.status
        else:
            flash(f"Campaign launched: {campaign.title}.", "success")
            return redirect(url_for("campaigns.campaign", campaign_id=campaign.id))
    return render_template("campaigns.html", campaigns=service.list(actor), kinds=KINDS, year=year,
                           candidates=service.candidates(year) if service.may_run(actor) else [],
                           default_cutoff=service.default_cutoff(year), may_run=service.may_run(actor),
                           errors=errors, form=form), status


@bp.get("/campaigns/<int:campaign_id>")
@login_required
def campaign(campaign_id: int):
    actor = current_actor()
    return render_template("campaign.html", campaign=core().campaigns.detail(actor, campaign_id),
                           may_run=core().campaigns.may_run(actor),
                           default_ratio=core().settings.values()["spot_check.sample_ratio"])


@bp.post("/campaigns/<int:campaign_id>/draw")
@login_required
def draw(campaign_id: int):
    try:
        campaign = _draw(current_actor(), campaign_id, request.form)
    except (InvalidData, Conflict) as exc:
        flash(exc.message, "error")
    else:
        flash(f"Drawn with seed {campaign.seed}: {', '.join(campaign.sampled) or 'no department'}.", "success")
    return redirect(url_for("campaigns.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/close")
@login_required
def close(campaign_id: int):
    try:
        core().campaigns.close(current_actor(), campaign_id)
    except Conflict as exc:
        flash(exc.message, "error")
    else:
        flash("Campaign closed.", "success")
    return redirect(url_for("campaigns.campaign", campaign_id=campaign_id))


# ---- JSON API (on the API blueprint: bearer tokens, no CSRF) -------------------------------

@api.bp.get("/campaigns")
@token_required
def api_list():
    year = _int_arg("year", 0, 0, 9999) or None
    items = core().campaigns.list(g.actor, year)
    return jsonify({"items": items, "total": len(items)})


@api.bp.post("/campaigns")
@token_required
def api_launch():
    campaign = _launch(g.actor, _body())
    return jsonify(core().campaigns.detail(g.actor, campaign.id)), 201


@api.bp.get("/campaigns/<int:campaign_id>")
@token_required
def api_detail(campaign_id: int):
    return jsonify(core().campaigns.detail(g.actor, campaign_id))


@api.bp.post("/campaigns/<int:campaign_id>/draw")
@token_required
def api_draw(campaign_id: int):
    body = request.get_json(silent=True)
    _draw(g.actor, campaign_id, body if isinstance(body, dict) else {})
    return jsonify(core().campaigns.detail(g.actor, campaign_id))


@api.bp.post("/campaigns/<int:campaign_id>/close")
@token_required
def api_close(campaign_id: int):
    core().campaigns.close(g.actor, campaign_id)
    return jsonify(core().campaigns.detail(g.actor, campaign_id))
